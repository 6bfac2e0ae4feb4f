"""Templated strings people read on receipts, forms, screens and labels: the
``template:KIND[:LANG]`` text source.

KIND is one of :data:`KINDS` (or ``any``: one of them at random per sample); LANG is ``ko``
(Korean formats: 2024년 3월 5일, 12,500원, 오후 3:45, 서울특별시 강남구 ...), ``en`` (English:
Mar 5, 2024, $12.99, 3:45 PM, 123 Main St ...) or ``mixed`` (either, per sample; the default).
"""

from __future__ import annotations

import string

import numpy as np

from ocr.data.synth.textsource import TextSource, sorted_symbols

KINDS = ("number", "price", "date", "time", "phone", "address", "code", "unit")
LANGS = ("ko", "en", "mixed")

_WEEK_KO = "월화수목금토일"
_WEEK_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_CITIES_KO = ("서울특별시", "부산광역시", "대구광역시", "인천광역시", "광주광역시", "대전광역시",
              "울산광역시", "세종특별자치시", "경기도 수원시", "경기도 성남시", "강원도 춘천시",
              "충청북도 청주시", "전라북도 전주시", "경상남도 창원시", "제주특별자치도 제주시", "서울")
_DISTRICTS_KO = ("강남구", "종로구", "중구", "마포구", "서초구", "송파구", "해운대구", "수성구",
                 "남동구", "유성구", "분당구", "영통구", "동구", "서구", "북구", "연수구")
_ROADS_KO = ("테헤란로", "세종대로", "을지로", "중앙로", "대학로", "올림픽로", "한강대로", "번영로",
             "해운대로", "경수대로", "월드컵북로", "도산대로", "삼성로", "판교역로")
_STREETS_EN = ("Main St", "Oak Avenue", "Park Rd", "High Street", "Elm St", "Maple Ave",
               "Broadway", "Market Street", "Church Lane", "5th Ave", "King's Road", "Station Rd")
_TOWNS_EN = ("Springfield", "London", "New York, NY", "Seattle, WA", "Austin, TX", "Leeds",
             "Toronto, ON", "Sydney NSW", "Dublin", "Boston, MA")
_UNITS = ("kg", "g", "mg", "ml", "L", "km", "m", "cm", "mm", "°C", "%", "V", "W", "kW", "Hz",
          "MB", "GB", "km/h", "m²", "lb", "oz", "in", "ft")
_UNITS_KO = ("개", "병", "장", "매", "권", "명", "회", "번", "층", "호", "원", "건", "박스", "세트")
_LABELS_KO = ("합계", "금액", "수량", "단가", "부가세", "결제", "카드", "현금", "받을금액", "거스름돈")
_LABELS_EN = ("Total", "Subtotal", "Tax", "Amount", "Qty", "Price", "Cash", "Change", "Balance")
_PLATE = "가나다라마거너더러머버서어저고노도로모보소오조구누두루무부수우주하허호"
# the characters the formats below write themselves (besides digits and the tables)
_LITERALS = " ()-+.,:%/#$€NoSINVUDAPMamptl"
_LITERALS_KO = "년월일시분오전후만원제호동₩"


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _grouped(n: int) -> str:
    return f"{n:,}"


def number(rng, ko: bool) -> str:
    form = int(rng.integers(6))
    n = int(10 ** rng.uniform(0, 7))
    if form == 0:
        return _grouped(n)
    if form == 1:
        return f"{rng.uniform(0, 1000):.{int(rng.integers(1, 4))}f}"
    if form == 2:
        return f"{_pick(rng, ('-', '+', ''))}{rng.uniform(0, 100):.1f}"
    if form == 3:
        return f"{rng.uniform(0, 100):.{int(rng.integers(0, 2))}f}%"
    if form == 4:
        return f"No. {int(rng.integers(1, 10000))}" if not ko else f"제{int(rng.integers(1, 500))}호"
    return str(n)


def price(rng, ko: bool) -> str:
    if ko:
        won = int(10 ** rng.uniform(2, 7)) // 10 * 10
        form = int(rng.integers(5))
        text = (f"{_grouped(won)}원", f"₩{_grouped(won)}", f"{_grouped(won)} 원",
                f"{_pick(rng, _LABELS_KO)} {_grouped(won)}원",
                f"{won // 10000}만 {won % 10000:,}원")[form]
        return text.replace("만 0원", "만원")
    amount = rng.uniform(0.5, 5000)
    form = int(rng.integers(5))
    return (f"${amount:,.2f}", f"€{amount:,.2f}", f"{amount:.2f} €", f"USD {amount:,.2f}",
            f"{_pick(rng, _LABELS_EN)}: ${amount:,.2f}")[form]


def date(rng, ko: bool) -> str:
    y, m, d = int(rng.integers(1990, 2036)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    wd = int(rng.integers(7))
    form = int(rng.integers(5))
    if ko:
        return (f"{y}년 {m}월 {d}일", f"{y}.{m:02d}.{d:02d}",
                f"{y % 100:02d}.{m:02d}.{d:02d}({_WEEK_KO[wd]})", f"{y}-{m:02d}-{d:02d}",
                f"{m}월 {d}일 ({_WEEK_KO[wd]})")[form]
    return (f"{_MONTHS[m - 1][:3]} {d}, {y}", f"{d:02d}/{m:02d}/{y}", f"{y}-{m:02d}-{d:02d}",
            f"{_WEEK_EN[wd]}, {d} {_MONTHS[m - 1][:3]} {y}", f"{_MONTHS[m - 1]} {d}, {y}")[form]


def time_of_day(rng, ko: bool) -> str:
    h, mi, s = int(rng.integers(0, 24)), int(rng.integers(0, 60)), int(rng.integers(0, 60))
    form = int(rng.integers(4))
    if ko:
        half = "오전" if h < 12 else "오후"
        return (f"{half} {h % 12 or 12}:{mi:02d}", f"{h}시 {mi}분", f"{h:02d}:{mi:02d}",
                f"{h:02d}:{mi:02d}:{s:02d}")[form]
    return (f"{h % 12 or 12}:{mi:02d} {'AM' if h < 12 else 'PM'}", f"{h:02d}:{mi:02d}",
            f"{h:02d}:{mi:02d}:{s:02d}", f"{h % 12 or 12}:{mi:02d} {'am' if h < 12 else 'pm'}")[form]


def phone(rng, ko: bool) -> str:
    a, b, c = int(rng.integers(100, 1000)), int(rng.integers(1000, 10000)), int(rng.integers(1000, 10000))
    form = int(rng.integers(4))
    if ko:
        return (f"010-{b}-{c}", f"02-{a}-{c}", f"+82 10-{b}-{c}", f"1588-{c}")[form]
    return (f"({a}) {a + 1}-{c}", f"+1 {a} 555 {c}", f"{a}-{c}", f"+44 20 {b} {c}")[form]


def address(rng, ko: bool) -> str:
    n = int(rng.integers(1, 400))
    if ko:
        text = f"{_pick(rng, _CITIES_KO)} {_pick(rng, _DISTRICTS_KO)} {_pick(rng, _ROADS_KO)} {n}"
        if rng.random() < 0.3:
            building, floor = int(rng.integers(101, 120)), int(rng.integers(1, 25))
            text += f", {building}동 {floor}{int(rng.integers(1, 9)):02d}호"
        return text
    text = f"{n} {_pick(rng, _STREETS_EN)}"
    if rng.random() < 0.3:
        text = f"Apt {int(rng.integers(1, 30))}{_pick(rng, 'ABCD')}, " + text
    return text + (f", {_pick(rng, _TOWNS_EN)}" if rng.random() < 0.6 else "")


def code(rng, ko: bool) -> str:
    def chars(n, pool=string.ascii_uppercase + string.digits):
        return "".join(pool[i] for i in rng.integers(0, len(pool), n))
    form = int(rng.integers(6))
    if form == 0:
        return f"{chars(2, string.ascii_uppercase)}-{chars(4, string.digits)}"
    if form == 1:
        return f"SN: {chars(4)}-{chars(4)}"
    if form == 2:
        return f"INV-{int(rng.integers(2015, 2030))}-{chars(5, string.digits)}"
    if form == 3:
        return f"#{chars(6)}"
    if form == 4 and ko:
        return f"{int(rng.integers(10, 100))}{_pick(rng, _PLATE)} {chars(4, string.digits)}"
    digits = [chars(n, string.digits) for n in (2, 4, 3, 1)]
    return "978-" + "-".join(digits)


def unit(rng, ko: bool) -> str:
    value = rng.uniform(0, 1000)
    shown = f"{value:.{int(rng.integers(0, 3))}f}"
    if ko and rng.random() < 0.4:
        return f"{int(value) % 100 + 1}{_pick(rng, _UNITS_KO)}"
    return f"{shown}{_pick(rng, ('', ' '))}{_pick(rng, _UNITS)}"


_MAKERS = {"number": number, "price": price, "date": date, "time": time_of_day, "phone": phone,
           "address": address, "code": code, "unit": unit}


class TemplateSource(TextSource):
    """One templated string of ``kind`` (or any kind) per sample, in ``lang``'s formats."""

    def __init__(self, kind: str, lang: str, spec: str):
        if kind != "any" and kind not in _MAKERS:
            raise ValueError(f"text source {spec!r}: unknown template {kind!r}, expected one of "
                             f"{', '.join(KINDS)} or any")
        if lang not in LANGS:
            raise ValueError(f"text source {spec!r}: unknown language {lang!r}, expected one of "
                             f"{', '.join(LANGS)}")
        self.spec, self.kind, self.lang = spec, kind, lang

    def sample(self, rng: np.random.Generator) -> str:
        kind = self.kind if self.kind != "any" else KINDS[int(rng.integers(len(KINDS)))]
        ko = self.lang == "ko" or (self.lang == "mixed" and rng.random() < 0.5)
        return _MAKERS[kind](rng, ko)

    def symbols(self) -> str:
        """Every symbol the formats can write: the tables, the literals, digits and capitals,
        in this language (tests check samples against it)."""
        tables = [_LITERALS, string.digits, string.ascii_uppercase, "".join(_UNITS)]
        if self.lang != "en":
            tables += [_LITERALS_KO, _WEEK_KO, _PLATE, *_CITIES_KO, *_DISTRICTS_KO, *_ROADS_KO,
                       *_UNITS_KO, *_LABELS_KO]
        if self.lang != "ko":
            tables += [*_WEEK_EN, *_MONTHS, *_STREETS_EN, *_TOWNS_EN, *_LABELS_EN, "ABCD"]
        return sorted_symbols("".join(tables))
