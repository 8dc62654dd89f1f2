"""Render the application icon's PNG sizes and the Windows .ico from the SVGs.

    python3 resources/make_icons.py            # rsvg-convert (Debian: librsvg2-bin)
    python3 resources/make_icons.py --qt       # Qt's SVG renderer instead
    python3 resources/make_icons.py --qt --render 1024 icon.png   # one size, anywhere

The drawings live in mailer_gui/resources/icons/ (the app loads them from
there): mailer-gui-small.svg, pixel-aligned, for 16 and 24 px, and
mailer-gui.svg for every larger size. This writes
resources/icons/hicolor/NxN/apps/mailer-gui.png (the freedesktop icon theme
layout that the .deb installs as it is) and resources/icons/mailer-gui.ico
(16 to 256 px, PNG-compressed entries, for the Windows build). The macOS
.icns is made from the same PNGs by packaging/macos/build-macos.sh.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = ROOT / "mailer_gui" / "resources" / "icons"
OUT_DIR = ROOT / "resources" / "icons"
NAME = "mailer-gui"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
SMALL_MAX = 24  # the small drawing covers sizes up to this one
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)


def source_for(size: int) -> Path:
    return SOURCE_DIR / (f"{NAME}-small.svg" if size <= SMALL_MAX else f"{NAME}.svg")


def png_path(size: int) -> Path:
    return OUT_DIR / "hicolor" / f"{size}x{size}" / "apps" / f"{NAME}.png"


def render_rsvg(svg: Path, size: int, out: Path) -> None:
    subprocess.run(
        ["rsvg-convert", "--width", str(size), "--height", str(size), "-o", str(out), str(svg)],
        check=True,
    )


def render_qt(svg: Path, size: int, out: Path) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(str(svg)).render(painter, QRectF(0, 0, size, size))
    painter.end()
    if not image.save(str(out), b"PNG"):
        raise OSError(f"cannot write {out}")


def write_ico(pngs: dict[int, bytes], out: Path) -> None:
    """An .ico whose entries are PNG files (Windows Vista and later read them)."""
    header = struct.pack("<HHH", 0, 1, len(pngs))
    directory = b""
    offset = 6 + 16 * len(pngs)
    body = b""
    for size, data in sorted(pngs.items()):
        side = 0 if size >= 256 else size  # 0 means 256 in an ICONDIRENTRY
        directory += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
        body += data
    write_atomically(out, header + directory + body)


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(data)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qt", action="store_true", help="render with Qt, not rsvg-convert")
    parser.add_argument(
        "--render",
        nargs=2,
        metavar=("SIZE", "PNG"),
        help="only render the icon at SIZE pixels to PNG (the macOS build's 1024 px)",
    )
    args = parser.parse_args(argv)
    render = render_qt if args.qt else render_rsvg
    if not args.qt and shutil.which("rsvg-convert") is None:
        print("rsvg-convert is missing: apt-get install librsvg2-bin, or use --qt", file=sys.stderr)
        return 1
    if args.render:
        size, out = int(args.render[0]), Path(args.render[1])
        out.parent.mkdir(parents=True, exist_ok=True)
        render(source_for(size), size, out)
        return 0
    rendered: dict[int, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            scratch = Path(tmp) / f"{size}.png"
            render(source_for(size), size, scratch)
            rendered[size] = scratch.read_bytes()
            write_atomically(png_path(size), rendered[size])
            print(png_path(size).relative_to(ROOT))
    write_ico({s: rendered[s] for s in ICO_SIZES}, OUT_DIR / f"{NAME}.ico")
    print((OUT_DIR / f"{NAME}.ico").relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
