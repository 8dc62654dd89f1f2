#!/usr/bin/env bash
# Build mailer-gui_VERSION_ARCH.deb: the PyInstaller one-folder app under
# /opt/mailer-gui, /usr/bin/mailer-gui, the .desktop file (which registers the
# mailto: handler through its MimeType: the desktop database trigger does the
# rest, so there are no maintainer scripts), the icons in hicolor and the
# AppStream metainfo.
#
#   packaging/linux/build-deb.sh [--output DIR] [--skip-pyinstaller]
#
# Needs: python3 with the build extra (pip install -e '.[build]'), dpkg-deb and
# dpkg-shlibdeps (Debian: dpkg-dev). Checked when present: desktop-file-validate
# (desktop-file-utils) and appstreamcli (appstream). Run on the Debian or Ubuntu
# release the package is for: the Depends come from that system's libraries.
# The version comes from mailer_gui/__init__.py. Prints the installed size and
# the size of the .deb; the package is written to dist/ unless --output says.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$(pwd)"

OUTPUT_DIR="${ROOT}/dist"
RUN_PYINSTALLER=true
while (($#)); do
    case "$1" in
        --output)
            OUTPUT_DIR="$(realpath -m "$2")"
            shift 2
            ;;
        --skip-pyinstaller)
            RUN_PYINSTALLER=false
            shift
            ;;
        -h | --help)
            sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "build-deb.sh: unknown argument: $1" >&2
            exit 64
            ;;
    esac
done

PACKAGE=mailer-gui
APP_ID=io.github.mailer_gui.MailerGui
VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' mailer_gui/__init__.py)"
if [[ -z "${VERSION}" ]]; then
    echo "build-deb.sh: no __version__ = \"...\" line in mailer_gui/__init__.py" >&2
    exit 1
fi
ARCH="$(dpkg --print-architecture)"
MAINTAINER="${DEBFULLNAME:-The Mailer developers} <${DEBEMAIL:-mailer-gui@users.noreply.github.com}>"
# Installed size that the build warns about, in MiB.
SIZE_TARGET_MIB=150

BUILD="${ROOT}/build"
DIST_APP="${BUILD}/pyinstaller/dist/${PACKAGE}"
STAGE="${BUILD}/deb/${PACKAGE}_${VERSION}_${ARCH}"
DEB="${OUTPUT_DIR}/${PACKAGE}_${VERSION}_${ARCH}.deb"

for tool in dpkg-deb dpkg-shlibdeps; do
    if ! command -v "${tool}" >/dev/null; then
        echo "build-deb.sh: ${tool} is missing (Debian: apt-get install dpkg-dev)" >&2
        exit 1
    fi
done

# --- the app -------------------------------------------------------------------------
if [[ "${RUN_PYINSTALLER}" == true ]]; then
    if ! python3 -c 'import PyInstaller' 2>/dev/null; then
        echo "build-deb.sh: PyInstaller is missing: python3 -m pip install -e '.[build]'" >&2
        exit 1
    fi
    echo "--- PyInstaller (one folder)"
    python3 -m PyInstaller --noconfirm --clean --log-level WARN \
        --distpath "${BUILD}/pyinstaller/dist" --workpath "${BUILD}/pyinstaller/work" \
        packaging/pyinstaller/mailer-gui.spec
fi
if [[ ! -x "${DIST_APP}/${PACKAGE}" ]]; then
    echo "build-deb.sh: ${DIST_APP}/${PACKAGE} was not built" >&2
    exit 1
fi

# Every library the bundle links must resolve, inside the bundle or on this system.
echo "--- checking the bundle's shared libraries"
is_elf() { [[ "$(LC_ALL=C head -c 4 "$1")" == $'\x7fELF' ]]; }
ELF_FILES=()
while IFS= read -r -d '' f; do
    if is_elf "${f}"; then
        ELF_FILES+=("${f}")
    fi
done < <(find "${DIST_APP}" -type f \( -name '*.so' -o -name '*.so.*' -o -perm -u+x \) -print0 | sort -z)
missing="$(for f in "${ELF_FILES[@]}"; do
    ldd "${f}" 2>/dev/null | awk -v f="${f#"${DIST_APP}/"}" '/not found/ { print "  " f ": " $1 }'
done)"
if [[ -n "${missing}" ]]; then
    echo "build-deb.sh: libraries that resolve nowhere (install them, or leave out what needs them):" >&2
    echo "${missing}" >&2
    exit 1
fi

# --- the package tree ----------------------------------------------------------------
echo "--- staging ${STAGE#"${ROOT}/"}"
rm -rf "${STAGE}"
install -d -m 0755 "${STAGE}/DEBIAN" "${STAGE}/opt" "${STAGE}/usr/bin" \
    "${STAGE}/usr/share/applications" "${STAGE}/usr/share/metainfo" \
    "${STAGE}/usr/share/doc/${PACKAGE}" "${STAGE}/usr/share/icons/hicolor/scalable/apps"
cp -a "${DIST_APP}" "${STAGE}/opt/${PACKAGE}"
ln -s "/opt/${PACKAGE}/${PACKAGE}" "${STAGE}/usr/bin/${PACKAGE}"
install -m 0644 "packaging/linux/${PACKAGE}.desktop" "${STAGE}/usr/share/applications/"
install -m 0644 "packaging/linux/${APP_ID}.metainfo.xml" "${STAGE}/usr/share/metainfo/"
for png in resources/icons/hicolor/*/apps/"${PACKAGE}".png; do
    size_dir="$(basename "$(dirname "$(dirname "${png}")")")"
    install -D -m 0644 "${png}" "${STAGE}/usr/share/icons/hicolor/${size_dir}/apps/${PACKAGE}.png"
done
install -m 0644 "mailer_gui/resources/icons/${PACKAGE}.svg" \
    "${STAGE}/usr/share/icons/hicolor/scalable/apps/${PACKAGE}.svg"
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: ${PACKAGE}"
    echo
    echo "Files: *"
    echo "Copyright: The Mailer developers"
    echo "License: MIT"
    sed -e 's/^$/./' -e 's/^/ /' LICENSE
    echo
    echo "Files: opt/${PACKAGE}/_internal/*"
    echo "Comment: Python, Qt (PySide6, LGPL-3), ICU and the Python packages the app uses,"
    echo " bundled by PyInstaller; their licences are in the .dist-info folders there."
} >"${STAGE}/usr/share/doc/${PACKAGE}/copyright"
chmod 0644 "${STAGE}/usr/share/doc/${PACKAGE}/copyright"
# Plain permissions whatever the umask: folders and programs 0755, data 0644.
find "${STAGE}" -type d -exec chmod 0755 {} +
find "${STAGE}/opt" -type f -exec chmod u+rw,go+r,go-w {} +

if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate "${STAGE}/usr/share/applications/${PACKAGE}.desktop"
fi
if command -v appstreamcli >/dev/null; then
    # The metainfo, and that its desktop file and icon are where it says.
    if ! report="$(appstreamcli validate-tree --no-net "${STAGE}" 2>&1)"; then
        echo "${report}" >&2
        exit 1
    fi
fi

# --- Depends: the system libraries the bundle links ---------------------------------
# dpkg-shlibdeps maps each library to its package and minimum version (from the
# packages' symbols files). Libraries inside the bundle have no package and are
# skipped. The GTK platform theme only adds GTK dialogs and theming, so its
# libraries are Recommends: without GTK, Qt uses its own theme.
echo "--- Depends"
STAGED_APP="${STAGE}/opt/${PACKAGE}"
mapfile -t STAGED_ELF < <(printf '%s\n' "${ELF_FILES[@]}" | sed "s|^${DIST_APP}|${STAGED_APP}|")
depends_files=()
recommends_files=()
for f in "${STAGED_ELF[@]}"; do
    case "${f}" in
        */platformthemes/libqgtk3.so) recommends_files+=("${f}") ;;
        *) depends_files+=("${f}") ;;
    esac
done
mapfile -t LIB_DIRS < <(printf '%s\n' "${STAGED_ELF[@]}" | xargs -n1 dirname | sort -u)
shlibs_work="$(mktemp -d)"
trap 'rm -rf "${shlibs_work}"' EXIT
mkdir -p "${shlibs_work}/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "${PACKAGE}" "${PACKAGE}" \
    >"${shlibs_work}/debian/control"
shlibs="$(
    cd "${shlibs_work}" &&
        dpkg-shlibdeps -O --ignore-missing-info --warnings=0 \
            "${LIB_DIRS[@]/#/-l}" \
            -dDepends "${depends_files[@]/#/-e}" \
            -dRecommends "${recommends_files[@]/#/-e}"
)"
shlibs_depends="$(sed -n 's/^shlibs:Depends=//p' <<<"${shlibs}")"
shlibs_recommends="$(sed -n 's/^shlibs:Recommends=//p' <<<"${shlibs}")"
if [[ -z "${shlibs_depends}" ]]; then
    echo "build-deb.sh: dpkg-shlibdeps found no dependencies; that cannot be right" >&2
    exit 1
fi
# TLS verification needs the system's CA certificates; the keyring needs a
# Secret Service (GNOME Keyring, KeePassXC, KWallet 6) on a session bus.
DEPENDS="${shlibs_depends}, ca-certificates"
RECOMMENDS="${shlibs_recommends:+${shlibs_recommends}, }default-dbus-session-bus | dbus-session-bus"
SUGGESTS="gnome-keyring | keepassxc"

# Installed-Size as dpkg-gencontrol counts it: KiB per file, rounded up, plus
# one per folder and symbolic link.
installed_kib="$(
    find "${STAGE}" -path "${STAGE}/DEBIAN" -prune -o -mindepth 1 \
        \( -type f -printf 'f %s\n' \) -o \( -printf 'o 0\n' \) |
        awk '$1 == "f" { kib += int(($2 + 1023) / 1024); next } { kib += 1 } END { print kib }'
)"

cat >"${STAGE}/DEBIAN/control" <<EOF
Package: ${PACKAGE}
Version: ${VERSION}
Architecture: ${ARCH}
Maintainer: ${MAINTAINER}
Installed-Size: ${installed_kib}
Depends: ${DEPENDS}
Recommends: ${RECOMMENDS}
Suggests: ${SUGGESTS}
Section: mail
Priority: optional
Homepage: https://github.com/mailer-gui/mailer-gui
Description: desktop mail composer that sends over SMTP and shows what happened
 Mailer writes messages in Markdown or plain text, with attachments and
 inline images, and delivers them over SMTP from a persistent outbox:
 temporary failures are retried, nothing is lost and nothing is sent twice.
 It sets an account up from the address and password, keeps passwords in
 the system keyring, explains a refusal in words and shows every line the
 server said. It opens mailto: links, and has a built-in sandbox server to
 try everything without sending real mail.
EOF
chmod 0644 "${STAGE}/DEBIAN/control"

# --- the .deb ------------------------------------------------------------------------
mkdir -p "${OUTPUT_DIR}"
dpkg-deb --root-owner-group -Zxz --build "${STAGE}" "${DEB}" >/dev/null

deb_bytes="$(stat -c %s "${DEB}")"
echo "--- ${DEB#"${ROOT}/"}"
sed -n 's/^\(Depends\|Recommends\): /  \1: /p' "${STAGE}/DEBIAN/control"
awk -v kib="${installed_kib}" -v deb="${deb_bytes}" -v target="${SIZE_TARGET_MIB}" 'BEGIN {
    printf "installed size: %.1f MiB (%d KiB; target under %d MiB)\n", kib / 1024, kib, target
    printf ".deb size: %.1f MiB (%d bytes)\n", deb / 1048576, deb
}'
if ((installed_kib > SIZE_TARGET_MIB * 1024)); then
    echo "build-deb.sh: warning: the installed size is over ${SIZE_TARGET_MIB} MiB" >&2
fi
