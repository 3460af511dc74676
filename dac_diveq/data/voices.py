"""The voice catalogue of the synthesised speech and its train / validation split.

A *voice identity* is an engine voice: an ``espeak-ng`` language (accent) with a variant
(timbre: ``+m3``, ``+f2``, ``+klatt`` ...) or a ``flite`` voice. Identities are split so
that validation voices are never used for training:

* espeak-ng: the variants in :data:`ESPEAK_VAL_VARIANTS` (with every accent) are validation
  only; all other variants are training only.
* flite: ``rms`` and ``kal16`` train; ``awb`` and ``slt`` are validation only. flite's
  ``awb`` and ``slt`` voices are built from the CMU ARCTIC recordings of the speakers awb and
  slt, and the real test clips ``arctic_a0007`` (awb) and ``arctic_a0009`` (slt) are those
  speakers, so keeping them out of training keeps the real test set speaker-disjoint.
  ``kal`` (8 kHz only, band-limited to 4 kHz) and ``awb_time`` (a limited-domain
  talking-clock voice) are not used.

Each utterance also draws its own speaking rate and pitch, so no two utterances share a
setting by accident.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

ESPEAK = "espeak-ng"
FLITE = "flite"

ESPEAK_LANGUAGES = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
    "en-029", "en-us-nyc",
)
ESPEAK_MAIN_VARIANTS = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
)
ESPEAK_EXTRA_VARIANTS = ("klatt", "klatt2", "klatt3", "klatt4", "croak", "whisper", "whisperf")
ESPEAK_EXTRA_SHARE = 0.15  # probability of drawing one of the unusual (extra) variants
ESPEAK_VAL_VARIANTS = ("m6", "f4", "klatt2")

FLITE_TRAIN_VOICES = ("rms", "kal16")
FLITE_VAL_VOICES = ("awb", "slt")
FLITE_F0_RANGES: Dict[str, Optional[Tuple[float, float]]] = {
    "kal16": (85.0, 190.0),  # diphone voice, default ~100 Hz
    "awb": (100.0, 150.0),  # default ~125 Hz
    "slt": (140.0, 210.0),  # default ~170 Hz
    "rms": None,  # ignores int_f0_target_mean
}
ENGINE_WEIGHTS = {ESPEAK: 0.6, FLITE: 0.4}


@dataclass(frozen=True)
class VoiceSetting:
    """Everything an engine needs to speak one utterance.

    Attributes:
        engine: ``"espeak-ng"`` or ``"flite"``.
        voice: espeak-ng voice with variant (``"en-gb+f3"``) or flite voice (``"slt"``).
        rate: espeak-ng words per minute, or flite ``duration_stretch`` (> 1 is slower).
        pitch: espeak-ng pitch 0-99, or flite mean F0 in Hz (``None``: the voice's own).
        word_gap: espeak-ng extra pause between words, in units of 10 ms.
    """

    engine: str
    voice: str
    rate: float
    pitch: Optional[float] = None
    word_gap: int = 0

    def to_dict(self) -> dict:
        """Return the setting as a JSON-serialisable dict."""
        return asdict(self)

    def key(self) -> str:
        """Return a stable, unique string for the setting (used in file-name hashes)."""
        return f"{self.engine}|{self.voice}|{self.rate}|{self.pitch}|{self.word_gap}"


@dataclass(frozen=True)
class Catalogue:
    """The voice identities available per engine and split.

    Attributes:
        espeak_main: ``{split: [voice, ...]}`` of usual espeak-ng voices.
        espeak_extra: ``{split: [voice, ...]}`` of unusual espeak-ng voices.
        flite: ``{split: [voice, ...]}`` of flite voices.
    """

    espeak_main: Dict[str, List[str]]
    espeak_extra: Dict[str, List[str]]
    flite: Dict[str, List[str]]

    def engines(self, split: str) -> List[str]:
        """Return the engines that have at least one voice for ``split``.

        Args:
            split: ``"train"`` or ``"val"``.

        Returns:
            Engine names.
        """
        out = []
        if self.espeak_main.get(split) or self.espeak_extra.get(split):
            out.append(ESPEAK)
        if self.flite.get(split):
            out.append(FLITE)
        return out


def _espeak_voices(languages: Sequence[str], variants: Sequence[str]) -> List[str]:
    """Return ``lang+variant`` voice names (``lang`` alone for the empty variant)."""
    return [f"{lang}+{v}" if v else lang for lang in languages for v in variants]


def build_catalogue(espeak_languages: Sequence[str] = (), espeak_variants: Sequence[str] = (),
                    flite_voices: Sequence[str] = ()) -> Catalogue:
    """Build the split voice catalogue from what the installed engines provide.

    Args:
        espeak_languages: Languages espeak-ng reports (empty when it is not installed).
        espeak_variants: Variant names espeak-ng reports (e.g. ``"m3"``, ``"klatt"``).
        flite_voices: Voices ``flite -lv`` reports (empty when it is not installed).

    Returns:
        The catalogue; an engine whose wanted voices are all missing has no voices.
    """
    langs = [lang for lang in ESPEAK_LANGUAGES if lang in set(espeak_languages)]
    have = set(espeak_variants) | {""}
    main = [v for v in ESPEAK_MAIN_VARIANTS if v in have]
    extra = [v for v in ESPEAK_EXTRA_VARIANTS if v in have]
    split = {
        "train": lambda vs: [v for v in vs if v not in ESPEAK_VAL_VARIANTS],
        "val": lambda vs: [v for v in vs if v in ESPEAK_VAL_VARIANTS],
    }
    fl = set(flite_voices)
    return Catalogue(
        espeak_main={s: _espeak_voices(langs, f(main)) for s, f in split.items()},
        espeak_extra={s: _espeak_voices(langs, f(extra)) for s, f in split.items()},
        flite={"train": [v for v in FLITE_TRAIN_VOICES if v in fl],
               "val": [v for v in FLITE_VAL_VOICES if v in fl]},
    )


def sample_setting(rng: random.Random, catalogue: Catalogue, split: str) -> VoiceSetting:
    """Draw one voice setting for an utterance of ``split``.

    Args:
        rng: Random generator (seed it per utterance for reproducibility).
        catalogue: Available voices.
        split: ``"train"`` or ``"val"``.

    Returns:
        The setting: a voice of that split with a random rate and pitch.
    """
    engines = catalogue.engines(split)
    if not engines:
        raise ValueError(f"no voices available for split {split!r}")
    engine = rng.choices(engines, weights=[ENGINE_WEIGHTS[e] for e in engines])[0]
    if engine == ESPEAK:
        main, extra = catalogue.espeak_main[split], catalogue.espeak_extra[split]
        pool = extra if extra and (not main or rng.random() < ESPEAK_EXTRA_SHARE) else main
        return VoiceSetting(
            engine=ESPEAK, voice=rng.choice(pool), rate=float(rng.randint(135, 200)),
            pitch=float(rng.randint(25, 75)), word_gap=rng.choice((0, 0, 0, 1, 2)),
        )
    voice = rng.choice(catalogue.flite[split])
    f0_range = FLITE_F0_RANGES.get(voice)
    pitch = round(rng.uniform(*f0_range), 1) if f0_range else None
    return VoiceSetting(engine=FLITE, voice=voice, rate=round(rng.uniform(0.85, 1.2), 2),
                        pitch=pitch)
