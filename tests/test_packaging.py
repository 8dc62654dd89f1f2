"""Packaging: the desktop integration files, the icons, the PyInstaller spec, the frozen app.

The .desktop file and the AppStream metainfo go through the freedesktop
validators. The icons are checked as a desktop and the window use them: PNGs
of the right size that match the SVG they were rendered from, a Windows .ico,
monochrome action icons that take the palette's colour. The runtime hook that
finds CA certificates in the frozen app is tested on folders made here.

The tests of the built app itself run when MAILER_GUI_FROZEN_APP names its
executable (.ci/run sets it to /usr/bin/mailer-gui after installing the .deb):
--version, --self-test and TLS verification, from /, with a clean environment.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import ssl
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType
from xml.etree import ElementTree

import pytest
from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QImage, QPainter, QPalette
from PySide6.QtSvg import QSvgRenderer

from mailer_gui import __version__
from mailer_gui.resources import ACTION_ICONS, action_icon_svg, app_icon_svgs
from mailer_gui.ui.icons import action_icon, app_icon
from tests.servers.availability import require_program

ROOT = Path(__file__).resolve().parent.parent
LINUX = ROOT / "packaging" / "linux"
DESKTOP_FILE = LINUX / "mailer-gui.desktop"
APP_ID = "io.github.mailer_gui.MailerGui"
METAINFO = LINUX / f"{APP_ID}.metainfo.xml"
SPEC = ROOT / "packaging" / "pyinstaller" / "mailer-gui.spec"
ICON_SOURCES = ROOT / "mailer_gui" / "resources" / "icons"
HICOLOR = ROOT / "resources" / "icons" / "hicolor"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def desktop_entry() -> configparser.SectionProxy:
    parser = configparser.RawConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # keys are case-sensitive
    parser.read(DESKTOP_FILE, encoding="utf-8")
    return parser["Desktop Entry"]


# --------------------------------------------------------------- desktop integration


def test_desktop_file_passes_desktop_file_validate() -> None:
    validate = require_program("desktop-file-validate")
    done = subprocess.run(
        [validate, str(DESKTOP_FILE)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""  # no hints either


def test_desktop_file_registers_the_mailto_handler() -> None:
    entry = desktop_entry()
    assert entry["Name"] == "Mailer"
    assert entry["GenericName"] == "Mail Composer"
    assert entry["Categories"].split(";")[:2] == ["Network", "Email"]
    assert "x-scheme-handler/mailto" in entry["MimeType"].split(";")
    # %u hands the clicked URL over as one argument.
    assert entry["Exec"] == "mailer-gui %u"
    assert entry["Icon"] == "mailer-gui"
    assert entry["Terminal"] == "false"
    # Qt names the window class after the application name set at start-up.
    assert entry["StartupWMClass"] == "mailer-gui"


def test_metainfo_passes_appstreamcli_validate() -> None:
    appstreamcli = require_program("appstreamcli")
    done = subprocess.run(
        [appstreamcli, "validate", "--no-net", "--strict", str(METAINFO)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_metainfo_matches_the_desktop_file_and_the_version() -> None:
    component = ElementTree.parse(METAINFO).getroot()
    assert component.findtext("id") == APP_ID
    assert METAINFO.name == f"{APP_ID}.metainfo.xml"
    assert component.findtext("launchable[@type='desktop-id']") == DESKTOP_FILE.name
    assert component.findtext("icon[@type='stock']") == desktop_entry()["Icon"]
    releases = [r.get("version") for r in component.iter("release")]
    assert releases[0] == __version__
    assert component.find("content_rating[@type='oars-1.1']") is not None
    images = [i.text or "" for i in component.iter("image")]
    assert images and all("/packaging/screenshots/" in i and i.endswith(".png") for i in images)
    assert component.find("provides/mediatype").text == "x-scheme-handler/mailto"  # type: ignore[union-attr]


# ----------------------------------------------------------------------- the icons


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR, after checking every chunk's CRC."""
    assert data[:8] == PNG_SIGNATURE
    offset, width, height, chunks = 8, 0, 0, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in chunk {kind!r}"
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 6), "expected 8-bit RGBA"
        chunks.append(kind)
        offset += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks
    return width, height


def render(svg: bytes, size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(QByteArray(svg)).render(painter, QRectF(0, 0, size, size))
    painter.end()
    return image


def mean_difference(a: QImage, b: QImage) -> float:
    """Mean absolute difference per channel, 0 to 255, of two same-sized images."""
    fmt = QImage.Format.Format_ARGB32_Premultiplied
    # The converted images must outlive the views of their pixels.
    first, second = a.convertToFormat(fmt), b.convertToFormat(fmt)
    left, right = bytes(first.constBits()), bytes(second.constBits())
    assert len(left) == len(right)
    return sum(abs(x - y) for x, y in zip(left, right, strict=True)) / len(left)


@pytest.mark.parametrize("size", PNG_SIZES)
def test_app_icon_png_has_its_size_and_matches_the_drawing(
    qapp: QGuiApplication, size: int
) -> None:
    path = HICOLOR / f"{size}x{size}" / "apps" / "mailer-gui.png"
    data = path.read_bytes()
    assert png_size(data) == (size, size)
    image = QImage.fromData(data, "PNG")
    assert not image.isNull()
    # The PNG is a rendering of the current SVG (resources/make_icons.py): the
    # small drawing up to 24 px, the full one above. rsvg and Qt antialias a
    # little differently; a stale PNG or the wrong drawing differs far more.
    (small_max, small), (_, full) = app_icon_svgs()
    expected = render(small if size <= small_max else full, size)
    other = render(full if size <= small_max else small, size)
    assert mean_difference(image, expected) < 8
    assert mean_difference(image, other) > 2 * mean_difference(image, expected)


def test_windows_ico_holds_png_entries_of_each_size() -> None:
    data = (ROOT / "resources" / "icons" / "mailer-gui.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", data[:6])
    assert (reserved, kind) == (0, 1)
    sizes = []
    for index in range(count):
        side, _, _, _, _, bits, length, offset = struct.unpack(
            "<BBBBHHII", data[6 + 16 * index : 22 + 16 * index]
        )
        width, height = png_size(data[offset : offset + length])
        assert width == height == (side or 256)
        assert bits == 32
        sizes.append(width)
    assert sizes == [16, 24, 32, 48, 64, 128, 256]


@pytest.mark.parametrize("name", ACTION_ICONS)
def test_action_icon_is_monochrome_current_color(name: str) -> None:
    root = ElementTree.fromstring(action_icon_svg(name))
    assert root.get("viewBox") == "0 0 24 24"
    paints = {
        element.get(attr)
        for element in root.iter()
        for attr in ("fill", "stroke", "color", "style")
        if element.get(attr) is not None
    }
    assert paints <= {"none", "currentColor"}, paints
    assert "currentColor" in paints


def test_unknown_action_icon_is_refused() -> None:
    with pytest.raises(ValueError, match="no action icon named 'sned'"):
        action_icon_svg("sned")
    with pytest.raises(ValueError):
        action_icon("sned")


def opaque_colours(icon: QIcon, size: int, mode: QIcon.Mode = QIcon.Mode.Normal) -> set[str]:
    """The colours of its opaque pixels, to the nearest multiple of 4 (blending rounds)."""
    image = icon.pixmap(QSize(size, size), 1.0, mode).toImage()
    colours = set()
    for x in range(size):
        for y in range(size):
            pixel = image.pixelColor(x, y)
            if pixel.alpha() == 255:
                colours.add(tuple((c + 2) // 4 * 4 for c in pixel.getRgb()[:3]))
    return {"#" + "".join(f"{min(c, 255):02x}" for c in rgb) for rgb in colours}


@pytest.mark.parametrize("name", ACTION_ICONS)
def test_action_icon_draws_in_the_palette_text_colour(qapp: QGuiApplication, name: str) -> None:
    saved = QGuiApplication.palette()
    palette = QPalette(saved)
    text = QPalette.ColorRole.ButtonText
    palette.setColor(QPalette.ColorGroup.Active, text, QColor("#e0e0e0"))
    palette.setColor(QPalette.ColorGroup.Disabled, text, QColor("#707070"))
    try:
        QGuiApplication.setPalette(palette)
        icon = action_icon(name)
        assert opaque_colours(icon, 48) == {"#e0e0e0"}
        assert opaque_colours(icon, 48, QIcon.Mode.Disabled) == {"#707070"}
        # A palette change (light to dark theme) reaches an icon made before it.
        palette.setColor(QPalette.ColorGroup.Active, text, QColor("#102030"))
        QGuiApplication.setPalette(palette)
        assert opaque_colours(icon, 48) == {"#102030"}
    finally:
        QGuiApplication.setPalette(saved)


def test_action_icon_takes_a_fixed_colour_and_scales_for_hidpi(qapp: QGuiApplication) -> None:
    icon = QIcon(action_icon("send", QColor("#c03020")))  # a copy: the engine is cloned
    assert opaque_colours(icon, 32) == {"#c03020"}
    pixmap = icon.pixmap(QSize(24, 24), 2.0)
    assert (pixmap.width(), pixmap.height(), pixmap.devicePixelRatio()) == (48, 48, 2.0)


def test_app_icon_uses_the_small_drawing_up_to_24_px(qapp: QGuiApplication) -> None:
    icon = app_icon()
    # The small drawing's tile fills the whole square; the full drawing leaves
    # a margin, so the left edge's middle pixel tells them apart.
    for size, small in ((16, True), (24, True), (32, False), (256, False)):
        image = icon.pixmap(QSize(size, size), 1.0).toImage()
        assert (image.pixelColor(0, size // 2).alpha() == 255) is small, size


# ------------------------------------------------------------------- the PyInstaller spec


def test_spec_bundles_the_data_and_the_modules_loaded_by_name() -> None:
    spec = SPEC.read_text(encoding="utf-8")
    compile(spec, str(SPEC), "exec")  # PyInstaller runs it as Python
    for needed in (
        'collect_data_files("mailer_gui"',  # providers.json, the icons
        'collect_submodules("mailer_gui")',
        '"keyring.backends"',
        'copy_metadata("keyring")',  # keyring finds its backends through entry points
        '"secretstorage"',
        '"jeepney"',
        '"dns"',
        '"aiosmtpd"',
        '"markdown.extensions"',
        'copy_metadata("markdown")',
        '"pygments.lexers"',
        '"pygments.styles"',
        "rthook_tls.py",
        '"CFBundleURLSchemes": ["mailto"]',
        "mailer-gui.ico",
    ):
        assert needed in spec, needed
    for left_out in ("QtWebEngineCore", "Qt3DCore", "QtQuick", "QtQml", "QtMultimedia"):
        assert left_out in spec, left_out


def test_every_file_the_packages_name_exists() -> None:
    deb = (LINUX / "build-deb.sh").read_text(encoding="utf-8")
    assert "packaging/linux/${PACKAGE}.desktop" in deb
    assert "packaging/linux/${APP_ID}.metainfo.xml" in deb
    assert f"APP_ID={APP_ID}" in deb
    iss = (ROOT / "packaging" / "windows" / "mailer-gui.iss").read_text(encoding="utf-8")
    for needed in (r"Software\Classes\mailto", "RegisteredApplications", "URLAssociations"):
        assert needed in iss, needed
    for path in (
        DESKTOP_FILE,
        METAINFO,
        ROOT / "resources" / "icons" / "mailer-gui.ico",
        ROOT / "packaging" / "pyinstaller" / "mailer_gui_main.py",
        ROOT / "packaging" / "macos" / "build-macos.sh",
        ROOT / "packaging" / "windows" / "build-windows.ps1",
        ICON_SOURCES / "mailer-gui.svg",
        ICON_SOURCES / "mailer-gui-small.svg",
    ):
        assert path.is_file(), path


# ------------------------------------------------------- CA certificates in the frozen app


def load_rthook() -> ModuleType:
    path = ROOT / "packaging" / "pyinstaller" / "rthook_tls.py"
    spec = importlib.util.spec_from_file_location("rthook_tls", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def verify_paths(cafile: Path, capath: Path) -> ssl.DefaultVerifyPaths:
    return ssl.DefaultVerifyPaths(
        None, None, "SSL_CERT_FILE", str(cafile), "SSL_CERT_DIR", str(capath)
    )


@pytest.fixture
def ca_places(tmp_path: Path) -> dict[str, Path]:
    places = {
        "built_in_file": tmp_path / "build-machine" / "cert.pem",
        "built_in_dir": tmp_path / "build-machine" / "certs",
        "system_file": tmp_path / "etc" / "ca-certificates.crt",
        "system_dir": tmp_path / "etc" / "certs",
        "certifi": tmp_path / "bundle" / "certifi" / "cacert.pem",
    }
    for path in places.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    return places


def test_ca_hook_changes_nothing_when_openssl_defaults_hold_certificates(
    ca_places: dict[str, Path],
) -> None:
    hook = load_rthook()
    ca_places["system_file"].write_text("system")
    ca_places["built_in_dir"].mkdir()
    (ca_places["built_in_dir"] / "5a3f0ff8.0").write_text("hashed")
    paths = verify_paths(ca_places["built_in_file"], ca_places["built_in_dir"])
    files = [str(ca_places["system_file"])]
    assert hook.ca_environment({}, paths, "linux", None, files, []) == {}
    ca_places["built_in_file"].write_text("bundle")
    assert hook.ca_environment({}, paths, "darwin", None, files, []) == {}


def test_ca_hook_respects_the_person_and_windows(ca_places: dict[str, Path]) -> None:
    hook = load_rthook()
    ca_places["system_file"].write_text("system")
    paths = verify_paths(ca_places["built_in_file"], ca_places["built_in_dir"])
    files = [str(ca_places["system_file"])]
    assert hook.ca_environment({"SSL_CERT_FILE": "/mine.pem"}, paths, "linux", None, files) == {}
    assert hook.ca_environment({"SSL_CERT_DIR": "/mine"}, paths, "linux", None, files) == {}
    # Windows: ssl reads the system certificate store itself.
    assert hook.ca_environment({}, paths, "win32", None, files) == {}


def test_ca_hook_prefers_the_system_store_to_certifi(ca_places: dict[str, Path]) -> None:
    hook = load_rthook()
    paths = verify_paths(ca_places["built_in_file"], ca_places["built_in_dir"])
    certifi = ca_places["certifi"]
    certifi.write_text("certifi")
    system_file, system_dir = ca_places["system_file"], ca_places["system_dir"]
    files = [str(system_file.with_name("absent.pem")), str(system_file)]
    dirs = [str(system_dir)]

    system_file.write_text("system")
    assert hook.ca_environment({}, paths, "darwin", str(certifi), files, dirs) == {
        "SSL_CERT_FILE": str(system_file)
    }
    system_file.unlink()
    system_dir.mkdir()
    (system_dir / "ISRG_Root_X1.pem").write_text("one")
    assert hook.ca_environment({}, paths, "linux", str(certifi), files, dirs) == {
        "SSL_CERT_DIR": str(system_dir)
    }
    (system_dir / "ISRG_Root_X1.pem").unlink()
    assert hook.ca_environment({}, paths, "linux", str(certifi), files, dirs) == {
        "SSL_CERT_FILE": str(certifi)
    }
    certifi.unlink()
    assert hook.ca_environment({}, paths, "linux", str(certifi), files, dirs) == {}


def test_ca_hook_does_nothing_outside_a_frozen_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    load_rthook()
    assert "SSL_CERT_FILE" not in os.environ and "SSL_CERT_DIR" not in os.environ


# ------------------------------------------------------------------------ the built app


def frozen_app() -> str:
    app = os.environ.get("MAILER_GUI_FROZEN_APP")
    if not app:
        pytest.fail(
            "set MAILER_GUI_FROZEN_APP to a built mailer-gui (.ci/run does, after building "
            "and installing the .deb)",
            pytrace=False,
        )
    if not os.access(app, os.X_OK):
        pytest.fail(f"MAILER_GUI_FROZEN_APP={app} is not an executable", pytrace=False)
    return app


def run_frozen(
    *args: str, home: Path, extra_env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """The built app, from /, with nothing of this test run's environment."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "QT_QPA_PLATFORM": "offscreen",
        **(extra_env or {}),
    }
    return subprocess.run(
        [frozen_app(), *args],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.installed_app
def test_frozen_app_prints_its_version(tmp_path: Path) -> None:
    done = run_frozen("--version", home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"mailer-gui {__version__}"


@pytest.mark.installed_app
def test_frozen_app_passes_its_self_test(tmp_path: Path) -> None:
    done = run_frozen("--self-test", home=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "self-test passed" in done.stdout


@pytest.mark.installed_app
def test_frozen_app_verifies_certificates_against_the_trust_store(
    aiosmtpd_factory, ca_bundle: Path, tmp_path: Path
) -> None:
    user, password = "ann@example.org", "correct horse"
    server = aiosmtpd_factory(tls="implicit", users={user: password})
    secret = tmp_path / "password"
    secret.write_text(password)
    home = tmp_path / "home"
    account = [
        "--home", str(home), "accounts", "add", "work", "--email", user,
        "--host", "localhost", "--port", str(server.port), "--security", "tls",
        "--password-command", f"cat {secret}",
    ]  # fmt: skip
    done = run_frozen(*account, home=tmp_path)
    assert done.returncode == 0, done.stderr

    # The test CA is in no system store: the frozen app refuses the server ...
    done = run_frozen("--home", str(home), "accounts", "test", "work", home=tmp_path)
    assert done.returncode == 69, done.stdout + done.stderr
    assert "does not trust" in done.stderr
    # ... and trusts it once SSL_CERT_FILE names the CA, as OpenSSL documents.
    done = run_frozen(
        "--home", str(home), "accounts", "test", "work",
        home=tmp_path, extra_env={"SSL_CERT_FILE": str(ca_bundle)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "logged in" in done.stdout
    assert password not in done.stdout + done.stderr


@pytest.mark.installed_app
def test_frozen_app_is_the_installed_one() -> None:
    app = frozen_app()
    if not app.startswith("/usr/bin/"):
        pytest.skip("checks the installed .deb only")
    # /usr/bin/mailer-gui is the packaged app under /opt, not a Python script.
    assert os.path.realpath(app) == "/opt/mailer-gui/mailer-gui"
    with open(app, "rb") as program:
        assert program.read(4) == b"\x7fELF"
    assert sys.executable not in os.path.realpath(app)
