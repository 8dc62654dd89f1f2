"""Data that ships inside the package: the provider list and the icons.

The files sit beside this module in a source tree, an installed wheel and the
PyInstaller bundle, and are read from there (importlib.resources would load
its readers and zipfile before the window's first paint); a package imported
from a zip archive falls back to importlib.resources. The icons are
SVG; `mailer_gui/ui/icons.py` turns them into QIcons (the action icons use
``currentColor``, so the window can draw them in its palette's text colour).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: The application icon's name, as the .desktop file and the icon theme know it.
APP_ICON = "mailer-gui"

#: The toolbar and menu icons, by name; each is ``icons/actions/NAME.svg``.
ACTION_ICONS = (
    "message-new",
    "send",
    "send-later",
    "draft-save",
    "attach",
    "retry",
    "cancel",
    "pause",
    "resume",
    "settings",
    "sandbox",
    "log",
)

#: The largest size, in pixels, that the simplified small drawing of the
#: application icon is meant for; larger sizes use the full drawing.
SMALL_APP_ICON_MAX = 24


def icons_dir() -> Traversable:
    """The folder holding ``mailer-gui.svg``, ``mailer-gui-small.svg`` and ``actions/``."""
    here = Path(__file__).with_name("icons")
    if here.is_dir():
        return here
    from importlib import resources

    return resources.files(__name__).joinpath("icons")


def action_icon_svg(name: str) -> bytes:
    """The SVG text of one action icon (strokes and fills in ``currentColor``).

    Raises ValueError for a name that is not in ACTION_ICONS.
    """
    if name not in ACTION_ICONS:
        raise ValueError(f"no action icon named {name!r}; known: {', '.join(ACTION_ICONS)}")
    return icons_dir().joinpath("actions", f"{name}.svg").read_bytes()


def app_icon_svgs() -> list[tuple[int, bytes]]:
    """The application icon's drawings as (largest size it suits, SVG), smallest first.

    The small drawing is pixel-aligned for 16 and 24 pixels; the full one
    (size 0: any size) is used above that.
    """
    folder = icons_dir()
    return [
        (SMALL_APP_ICON_MAX, folder.joinpath(f"{APP_ICON}-small.svg").read_bytes()),
        (0, folder.joinpath(f"{APP_ICON}.svg").read_bytes()),
    ]
