"""Layout "labels": a ``labels.txt`` of ``filename label`` lines, split at the first space::

    0.jpg 여기가
    1.jpg 라벨이 있는 곳

Images live in ``options.image_root``, else in ``<folder of labels.txt>/images`` when that
folder exists, else beside ``labels.txt``. ``options.separator`` overrides the space. Line
handling (blank lines, CRLF, BOM, missing separator, labels cleaned by validation) is the gt
layout's.
"""

from __future__ import annotations

from typing import ClassVar

from ocr.data.formats.gt import GtReader, images_root


class LabelsReader(GtReader):
    """``LabelsReader(uri_of_labels_txt, options, s3).entries()``: one entry per non-blank line."""

    layout: ClassVar[str] = "labels"
    default_separator: ClassVar[str] = " "

    def image_root(self) -> str:
        return images_root(self.uri, self.options, self.s3)
