#!/bin/sh
# Install the Debian packages of the real DICOM peers the tests start on loopback:
# DCMTK (storescu/storescp/findscu/movescu/dcmqrscp), Orthanc and its DICOMweb plugin, dicom3tools (dciodvfy),
# plastimatch, Chromium + chromium-driver for the browser tests of the review page (tests/web), and openssl
# (the DICOM TLS tests make their certificates with it: scripts/make-test-certs.sh).
set -eu
missing=""
for pair in storescu:dcmtk dcmqrscp:dcmtk Orthanc:orthanc dciodvfy:dicom3tools plastimatch:plastimatch chromium:chromium chromedriver:chromium-driver openssl:openssl; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
        case " $missing " in *" $pkg "*) ;; *) missing="$missing $pkg" ;; esac
    fi
done
# Orthanc's DICOMweb plugin (QIDO-RS / WADO-RS / STOW-RS): tests/net/test_dicomweb_orthanc.py, the DICOMweb session
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing="$missing orthanc-dicomweb"
[ -z "$missing" ] && exit 0
echo "installing Debian packages:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
