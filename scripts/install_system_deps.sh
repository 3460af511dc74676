#!/usr/bin/env bash
# Debian packages the embedded data and the Opus reference need: espeak-ng and flite (speech
# synthesis), ktuberling-data and asterisk-core-sounds-*-g722 (real speech: training, dev and test sets), sox, opus-tools. Installs them with apt when possible; otherwise says what to do.
set -u
PACKAGES=(espeak-ng flite sox opus-tools ktuberling-data asterisk-core-sounds-en-g722 asterisk-core-sounds-es-g722
          asterisk-core-sounds-fr-g722 asterisk-core-sounds-it-g722 asterisk-core-sounds-ru-g722)
if dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    if apt-get update -q >/dev/null && apt-get install -y -q "${PACKAGES[@]}" >/dev/null; then
        exit 0
    fi
fi
echo "warning: could not install ${PACKAGES[*]}; run: sudo apt-get install ${PACKAGES[*]}" >&2
echo "         (speech synthesis for the embedded data needs espeak-ng and flite)" >&2
exit 0
