#!/usr/bin/env bash
# Build dist/Mailer-VERSION.dmg: Mailer.app from the shared PyInstaller spec
# (Info.plist with CFBundleIdentifier io.github.mailer_gui.MailerGui and
# CFBundleURLTypes for mailto:), the icon as .icns made by iconutil, checked
# with --version and --self-test, then a compressed disk image with the app and a
# link to /Applications.
#
#   packaging/macos/build-macos.sh
#
# Needs: macOS 11 or later with the Xcode command line tools (iconutil, hdiutil,
# codesign) and Python 3.11+ as python3 (python.org or Homebrew). The app is
# signed ad hoc, or with MAILER_GUI_CODESIGN_IDENTITY ("Developer ID Application:
# ...") when set; notarizing the disk image is a separate step (xcrun notarytool).
# mailto: links: macOS reads CFBundleURLTypes when the app is copied to
# /Applications; the person picks Mailer in Mail > Settings > General >
# Default email reader.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$(pwd)"

if [[ "$(uname -s)" != Darwin ]]; then
    echo "build-macos.sh: this builds a macOS app and runs only on macOS" >&2
    exit 1
fi
VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' mailer_gui/__init__.py)"
if [[ -z "${VERSION}" ]]; then
    echo "build-macos.sh: no __version__ = \"...\" line in mailer_gui/__init__.py" >&2
    exit 1
fi
BUILD="${ROOT}/build/macos"
APP="${ROOT}/build/pyinstaller/dist/Mailer.app"
DMG="${ROOT}/dist/Mailer-${VERSION}.dmg"

python3 -m pip install -e '.[build]'

# --- the icon: an .iconset from the PNG sizes, and 1024 px rendered from the SVG -----
echo "--- mailer-gui.icns"
rm -rf "${BUILD}"
ICONSET="${BUILD}/mailer-gui.iconset"
mkdir -p "${ICONSET}"
png() { echo "resources/icons/hicolor/${1}x${1}/apps/mailer-gui.png"; }
for size in 16 32 128 256 512; do
    cp "$(png "${size}")" "${ICONSET}/icon_${size}x${size}.png"
done
cp "$(png 32)" "${ICONSET}/icon_16x16@2x.png"
cp "$(png 64)" "${ICONSET}/icon_32x32@2x.png"
cp "$(png 256)" "${ICONSET}/icon_128x128@2x.png"
cp "$(png 512)" "${ICONSET}/icon_256x256@2x.png"
python3 resources/make_icons.py --qt --render 1024 "${ICONSET}/icon_512x512@2x.png"
iconutil --convert icns --output "${BUILD}/mailer-gui.icns" "${ICONSET}"

# --- the app -------------------------------------------------------------------------
echo "--- PyInstaller: Mailer.app"
MAILER_GUI_ICNS="${BUILD}/mailer-gui.icns" python3 -m PyInstaller --noconfirm --clean \
    --log-level WARN --distpath build/pyinstaller/dist --workpath build/pyinstaller/work \
    packaging/pyinstaller/mailer-gui.spec

/usr/libexec/PlistBuddy -c 'Print :CFBundleURLTypes:0:CFBundleURLSchemes:0' \
    "${APP}/Contents/Info.plist" | grep -qx mailto

# PyInstaller signs the bundle ad hoc; a Developer ID signature replaces that,
# with the hardened runtime that notarization requires.
if [[ -n "${MAILER_GUI_CODESIGN_IDENTITY:-}" ]]; then
    codesign --force --deep --options runtime --timestamp \
        --entitlements packaging/macos/entitlements.plist \
        --sign "${MAILER_GUI_CODESIGN_IDENTITY}" "${APP}"
fi
codesign --verify --deep --strict "${APP}"

"${APP}/Contents/MacOS/mailer-gui" --version
QT_QPA_PLATFORM=offscreen "${APP}/Contents/MacOS/mailer-gui" --self-test

# --- the disk image ------------------------------------------------------------------
echo "--- ${DMG#"${ROOT}/"}"
STAGE="${BUILD}/dmg"
rm -rf "${STAGE}"
mkdir -p "${STAGE}" "$(dirname "${DMG}")"
ditto "${APP}" "${STAGE}/Mailer.app"
ln -s /Applications "${STAGE}/Applications"
rm -f "${DMG}"
hdiutil create -volname "Mailer ${VERSION}" -srcfolder "${STAGE}" -fs HFS+ \
    -format UDZO -imagekey zlib-level=9 -ov "${DMG}"
hdiutil verify "${DMG}"

echo "installed size: $(du -sh "${APP}" | cut -f1)"
echo "disk image: $(du -h "${DMG}" | cut -f1)"
