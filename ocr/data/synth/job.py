"""``ocr synth``: render synthetic lines or pages straight into shards, as a Ray Data job.

Sample ``i`` is rendered from a generator seeded by ``(seed, chunk)``, so the same config
gives the same shards on any cluster. Lines become recognition shards; pages become
detection shards (line, word and character boxes, and the page's rotation angle).
"""

from __future__ import annotations

import io
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import yaml

from ocr import storage
from ocr.charset import Charset, load_charset
from ocr.config import ConfigError, parse_overrides
from ocr.data.config import SynthConfig, parse_split_ratios
from ocr.data.formats.base import Box, Entry
from ocr.data.ingest import build_manifest, check_output, finish, new_row, run_pipeline, to_block
from ocr.data.synth.augment import STYLE_MIXES, STYLE_PRESETS, LineStyle
from ocr.data.synth.fonts import (
    SYSTEM_FONT_DIRS,
    describe_symbols,
    find_fonts,
    font_files,
    fonts_covering,
    install_hint,
    uncovered,
)
from ocr.data.synth.glyphs import GlyphBank, render_glyph_line
from ocr.data.synth.line import render_line
from ocr.data.synth.mix import MixSource
from ocr.data.synth.page import render_page
from ocr.data.synth.text import parse_text_source
from ocr.data.validate import Reject, Validator, sample_id, split_of


def _range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def select_fonts(cfg: SynthConfig, source=None):
    """The fonts to draw with: ``--fonts`` (default: the system's), filtered by name with
    ``--font-include``/``--font-exclude``. Refused (ConfigError), before any Ray work, when none
    is left or when a symbol of the text source (``source``, else ``cfg.text``) is in no font:
    the message names the symbols, the fonts considered and what to do."""
    where = (f"--fonts {' '.join(cfg.fonts)}" if cfg.fonts
             else f"the system font folders ({', '.join(SYSTEM_FONT_DIRS)})")
    found = find_fonts(cfg.fonts or None)
    if not found:
        files = font_files(cfg.fonts or list(SYSTEM_FONT_DIRS))
        got = (f"{len(files)} font file(s), none readable (e.g. {files[0]})" if files
               else "no .ttf, .otf, .ttc or .otc file")
        todo = ("give --fonts a folder holding fonts (e.g. /usr/share/fonts), or leave --fonts out "
                "to use the system's" if cfg.fonts else "install some, e.g. on Debian/Ubuntu `sudo "
                "apt-get install fonts-dejavu-core fonts-nanum fonts-noto-cjk` (scripts/setup.sh does), "
                "or give --fonts a folder of font files")
        raise ConfigError(f"no fonts to draw with: expected font files in {where}, found {got}: {todo}")
    fonts = found
    if cfg.font_include:
        fonts = [f for f in fonts if f.matches(*cfg.font_include)]
    if cfg.font_exclude:
        fonts = [f for f in fonts if not f.matches(*cfg.font_exclude)]
    if not fonts:
        raise ConfigError(_no_font_left(cfg, found, where))
    _check_coverage(cfg, fonts, where, source)
    return fonts


def _no_font_left(cfg: SynthConfig, found: list, where: str) -> str:
    flags = " and ".join(f"--{name.replace('_', '-')} {' '.join(values)}" for name, values in
                         (("font_include", cfg.font_include), ("font_exclude", cfg.font_exclude)) if values)
    names = sorted({f.name for f in found})
    examples = ", ".join(repr(names[i * len(names) // 6]) for i in range(min(6, len(names))))
    in_files = [s for s in cfg.font_include
                if any(s.lower() in Path(f.path).name.lower() for f in found)
                and not any(f.matches(s) for f in found)]
    hint = (f" ({', '.join(map(repr, in_files))} is part of a file name, but fonts are matched by "
            "their name, such as 'DejaVu Sans Bold' for DejaVuSans-Bold.ttf)" if in_files else "")
    among = f"{len(found)} font{'s' * (len(found) != 1)} in {where}{hint}"
    return (f"{flags} left no font: expected part of a font's name (case-insensitive), found none "
            f"among the {among}; their names include {examples}. Loosen "
            f"{'--font-include' if cfg.font_include else '--font-exclude'} (`fc-list : fullname` "
            "lists the names), or give --fonts a folder of the fonts you mean")


def _check_coverage(cfg: SynthConfig, fonts: list, where: str, source) -> None:
    """Every symbol the text source draws must be in some selected font: a random text with one
    that none has would never be drawn (nor a page line). Lines of a file that hold such a symbol
    are skipped with a note, as long as some lines can be drawn."""
    source = source if source is not None else parse_text_source(cfg.text)
    missing = uncovered(fonts, source.symbols())
    if not missing:
        return
    units = getattr(source, "lines", None)  # a file's lines (or words): each drawn whole
    lost = set(missing)
    drawable = None if units is None else sum(1 for u in units if lost.isdisjoint(u))
    filters = ", ".join(f"--{n.replace('_', '-')} {' '.join(v)}" for n, v in
                        (("font_include", cfg.font_include), ("font_exclude", cfg.font_exclude)) if v)
    symbols = len([c for c in source.symbols() if not c.isspace()])
    said = (f"no selected font covers {len(missing):,} of the {symbols:,} symbols of --text "
            f"{cfg.text} ({describe_symbols(missing)})")
    if isinstance(source, MixSource) and len(missing) < len(source.symbols().strip()):
        print(f"note: {said}; texts of the mix holding them are drawn again", file=sys.stderr)
        return
    if drawable and cfg.kind == "line":

        print(f"note: {said}; the {len(units) - drawable} of {len(units)} "
              f"{'words' if source.spec.startswith('words:') else 'lines'} holding them are never drawn",
              file=sys.stderr)
        return
    considered = f"{len(fonts)} font{'s' * (len(fonts) != 1)} considered (from {where}"
    raise ConfigError(
        f"{said}: expected at least one font with a glyph for each, found none among the "
        f"{considered}{'; ' + filters if filters else ''}). Install fonts that have them "
        f"(Debian/Ubuntu: {install_hint(missing)}), or give --fonts a folder of such fonts"
        f"{', or loosen ' + filters if filters else ''}")


def load_bank(cfg: SynthConfig, source) -> GlyphBank:
    """The glyph bank of ``--glyphs``, refused (ConfigError) when it holds no crop for any symbol
    of the text source; symbols it lacks are named (texts holding them are drawn again)."""
    try:
        bank = GlyphBank.load(cfg.glyphs)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    wanted = [c for c in source.symbols() if c != " "]
    missing = bank.missing("".join(wanted))
    if len(missing) == len(wanted):
        raise ConfigError(f"glyphs {cfg.glyphs}: expected crops for the symbols of --text {cfg.text} "
                          f"({describe_symbols(wanted)}), found crops of {bank.symbols()!r} only")
    if missing:
        print(f"note: glyphs {cfg.glyphs} have no crop of {describe_symbols(missing)}: texts holding "
              "them are drawn again", file=sys.stderr)
    return bank


def font_weights(cfg: SynthConfig, fonts) -> dict | None:
    """Each font's weight, the product of the ``--font-weight`` factors its name matches."""
    factors = cfg.font_weights()
    if not factors:
        return None
    return {f: float(np.prod([w for part, w in factors if f.matches(part)] or [1.0]))
            for f in fonts}


def line_styles(cfg: SynthConfig) -> tuple[LineStyle, ...]:
    """The preset's LineStyle (or a mix's, one drawn per line) with ``style_set`` overrides
    (values parsed as YAML: 4, [1, 3], {jpeg_p: 0.5})."""
    overrides = {k: yaml.safe_load(v) for k, v in parse_overrides(cfg.style_set).items()}
    fields = set(LineStyle.__dataclass_fields__)
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"style_set: unknown LineStyle keys {unknown}, expected some of "
                          f"{sorted(fields)}")
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    try:
        return tuple(LineStyle(**{**STYLE_PRESETS[name], **overrides})
                     for name in STYLE_MIXES.get(cfg.style, (cfg.style,)))
    except ValueError as e:
        raise ConfigError(f"style_set: {e}") from None


def _encode(img, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, "PNG", compress_level=1)
    else:
        img.convert("RGB" if img.mode not in ("L", "RGB") else img.mode).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@dataclass(frozen=True)
class Renderer:
    """Everything a render task needs; pickled once per task."""

    cfg: SynthConfig
    fonts: tuple
    styles: tuple
    validator: Validator
    ratios: dict
    bank: GlyphBank | None = None
    weights: dict | None = None   # font -> --font-weight product (None: uniform)

    def _style(self, rng):
        """The line's style: the preset's, or one of a mix's (drawn only for a mix)."""
        return self.styles[int(rng.integers(len(self.styles)))] if len(self.styles) > 1 else self.styles[0]

    def _glyph_line(self, source, rng):
        for _ in range(100):
            text = source.sample(rng)
            if not self.bank.missing(text):
                return render_glyph_line(text, self.bank, self.cfg.height, self._style(rng), rng), text
        raise ConfigError(f"glyphs {self.cfg.glyphs} have no crops for the symbols of texts of "
                          f"{self.cfg.text!r} (e.g. {text!r}: {''.join(self.bank.missing(text))!r})")

    def sample(self, source, rng) -> tuple[bytes, Entry]:
        cfg = self.cfg
        if self.bank is not None and (cfg.glyph_share >= 1 or rng.random() < cfg.glyph_share):
            img, text = self._glyph_line(source, rng)
            return _encode(img, cfg.image_format), Entry(key="", label=text)
        if cfg.kind == "line":
            for _ in range(100):
                text = source.sample(rng)
                usable = fonts_covering(list(self.fonts), text)
                if usable:
                    break
            else:
                raise ConfigError(f"no selected font covers texts of {cfg.text!r} (e.g. {text!r})")

            img = render_line(text, self._font(usable, rng), cfg.height, self._style(rng), rng)
            return _encode(img, cfg.image_format), Entry(key="", label=text)
        return self._page(source, rng)

    def _font(self, usable: list, rng):
        """One of the fonts that draw the text, uniformly or as ``--font-weight`` says."""
        if not self.weights:
            return usable[int(rng.integers(len(usable)))]
        p = np.array([self.weights[f] for f in usable])
        return usable[int(rng.choice(len(usable), p=p / p.sum()))]

    def _page(self, source, rng):
        cfg = self.cfg
        lo, hi = _range(cfg.lines_per_page)
        lines = [source.sample(rng) for _ in range(int(rng.integers(lo, hi + 1)))]
        angle = float(rng.uniform(-cfg.max_angle, cfg.max_angle)) if cfg.max_angle else 0.0
        page = render_page(lines, list(self.fonts), rng, size=(cfg.page_width, cfg.page_height),
                           angle=angle)
        boxes = tuple(b if isinstance(b, Box) else Box(**b) for b in page.boxes)
        return _encode(page.image, cfg.image_format), Entry(key="", boxes=boxes, angle=page.angle)

    def chunk(self, index: int, start: int, stop: int):
        """A read task: render samples [start, stop) and yield them as one block."""
        cfg, task = self.cfg, self.validator.task
        source = parse_text_source(cfg.text)
        rng = np.random.default_rng([cfg.seed, index])
        rows = []
        for i in range(start, stop):
            key = f"{i:09d}"
            sid = sample_id(cfg.source, key)
            row = new_row(sid, key, cfg.source, split_of(sid, self.ratios))
            data, entry = self.sample(source, rng)
            try:
                cols, dropped = self.validator.row(entry, data)
                row.update(cols, image=data, dropped=dropped)
            except Reject as r:
                row.update(reject=r.reason, detail=r.detail)
            rows.append(row)
        yield to_block(rows, index, 0, task)


def synth(cfg: SynthConfig, progress: bool | None = None) -> dict:
    """Render ``cfg.count`` samples into shards under ``cfg.output``; returns the manifest."""
    if not cfg.output:
        raise ConfigError("output: expected a folder or s3:// URI for the shards")
    s3 = storage.S3Settings.from_env()
    source = parse_text_source(cfg.text)
    charset = (Charset.from_labels([source.symbols()]) if cfg.charset == "derive"
               else load_charset(cfg.charset))
    task = "recognition" if cfg.kind == "line" else "detection"
    validator = Validator(task=task, charset=charset, height=cfg.height, ctc_width=0)
    bank = load_bank(cfg, source) if cfg.glyphs else None
    fonts = () if bank is not None and cfg.glyph_share >= 1 else tuple(select_fonts(cfg, source))
    renderer = Renderer(cfg, fonts, line_styles(cfg), validator, parse_split_ratios(cfg.splits), bank,
                        font_weights(cfg, fonts))
    check_output(cfg.output, cfg.overwrite, s3)
    started = time.perf_counter()
    bounds = range(0, cfg.count, cfg.shard_size)
    read_fns = [partial(renderer.chunk, k, start, min(start + cfg.shard_size, cfg.count))
                for k, start in enumerate(bounds)]
    merged = run_pipeline(read_fns, cfg.output, task, s3, "Synth", cfg.num_cpus, progress)
    sources = [{"name": cfg.source, "uri": f"synth:{cfg.text}", "layout": f"synth-{cfg.kind}"}]
    manifest = build_manifest(validator, sources, merged, cfg)
    finish(cfg.output, manifest, merged, s3)
    manifest["_seconds"] = time.perf_counter() - started
    return manifest
