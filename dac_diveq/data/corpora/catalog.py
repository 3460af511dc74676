"""What is known about each corpus before it is on disk: where its archives are, their sizes and
checksums, its licence, its native sample rate, and the committed split of its speakers.

Sizes are approximate (OpenSLR's listed sizes, rounded; VCTK's and DAPS's are estimates) and only
used where the server does not say: the download asks for the exact ``Content-Length`` before
starting, and the disk check uses that. Checksums: the SHA-256 digests of the LibriSpeech, LibriTTS and
VCTK 0.92 archives are the ones published with torchaudio's dataset loaders for the same URLs
(``checksum_basis: "published"``); DAPS has no published SHA-256, so its digest is computed and
recorded in ``provenance.json`` after the download (``"recorded"``) and nothing is verified against it.

Splits are speaker-disjoint and fixed here, in the code: LibriSpeech and LibriTTS by their official
subsets (their readers never cross subsets), VCTK and DAPS by the speaker lists below; every speaker
not listed for val or test is a training speaker.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

GB = 1_000_000_000
MB = 1_000_000
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Archive:
    """One downloadable archive.

    Attributes:
        url: Official location.
        size: Approximate size in bytes (for estimates; the server's ``Content-Length`` wins).
        hours: Hours of audio in it (the corpus's own figures; for the estimates).
        sha256: Published SHA-256 digest, or ``None`` where none is published.
    """

    url: str
    size: int
    hours: float
    sha256: Optional[str] = None

    @property
    def filename(self) -> str:
        """The archive's file name (the URL's last part, without a query)."""
        return self.url.split("?")[0].rstrip("/").split("/")[-1]


@dataclass(frozen=True)
class Corpus:
    """A corpus: its archives (one per subset), licence and speaker split.

    Attributes:
        name: Key used on the command line and in folder names.
        title: Full name and version.
        homepage: Where it is described.
        licence: Licence of the recordings.
        citation: The paper to cite.
        native_rate: Sample rate of the distributed audio.
        layout: The official folder layout the preparation reads (said in error messages).
        subsets: Subset name -> archive.
        default_subsets: Prepared when ``--subsets`` is not given.
        subset_split: Subset -> split, for corpora split by subset (LibriSpeech, LibriTTS).
        val_speakers, test_speakers: Committed speaker lists, for corpora split by speaker.
    """

    name: str
    title: str
    homepage: str
    licence: str
    citation: str
    native_rate: int
    layout: str
    subsets: Mapping[str, Archive]
    default_subsets: Tuple[str, ...]
    subset_split: Mapping[str, str] = field(default_factory=dict)
    val_speakers: Tuple[str, ...] = ()
    test_speakers: Tuple[str, ...] = ()

    def split_of(self, subset: str, speaker: str) -> str:
        """The split (``train``, ``val`` or ``test``) of one utterance."""
        if self.subset_split:
            return self.subset_split[subset]
        if speaker in self.val_speakers:
            return "val"
        return "test" if speaker in self.test_speakers else "train"

    def hours(self, subsets: Tuple[str, ...]) -> float:
        """Hours of audio in ``subsets``."""
        return sum(self.subsets[s].hours for s in subsets)


_LIBRI_SPLIT = {"train-clean-100": "train", "train-clean-360": "train", "train-other-500": "train",
                "dev-clean": "val", "dev-other": "val", "test-clean": "test", "test-other": "test"}
_OPENSLR = "https://www.openslr.org/resources"

LIBRISPEECH = Corpus(
    name="librispeech", title="LibriSpeech ASR corpus (OpenSLR 12)", homepage="https://www.openslr.org/12",
    licence="CC BY 4.0",
    citation="Panayotov, Chen, Povey, Khudanpur: LibriSpeech: an ASR corpus based on public domain audio books, "
             "ICASSP 2015",
    native_rate=16000,
    layout="LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac + "
           "<speaker>-<chapter>.trans.txt",
    subsets={
        "dev-clean": Archive(f"{_OPENSLR}/12/dev-clean.tar.gz", 337 * MB, 5.4,
                             "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3"),
        "dev-other": Archive(f"{_OPENSLR}/12/dev-other.tar.gz", 314 * MB, 5.3,
                             "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365"),
        "test-clean": Archive(f"{_OPENSLR}/12/test-clean.tar.gz", 346 * MB, 5.4,
                              "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23"),
        "test-other": Archive(f"{_OPENSLR}/12/test-other.tar.gz", 328 * MB, 5.1,
                              "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29"),
        "train-clean-100": Archive(f"{_OPENSLR}/12/train-clean-100.tar.gz", int(6.3 * GB), 100.6,
                                   "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2"),
        "train-clean-360": Archive(f"{_OPENSLR}/12/train-clean-360.tar.gz", 23 * GB, 363.6,
                                   "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf"),
        "train-other-500": Archive(f"{_OPENSLR}/12/train-other-500.tar.gz", 30 * GB, 496.7,
                                   "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2"),
    },
    default_subsets=("train-clean-100", "dev-clean", "test-clean"),
    subset_split=_LIBRI_SPLIT,
)

LIBRITTS = Corpus(
    name="libritts", title="LibriTTS corpus (OpenSLR 60)", homepage="https://www.openslr.org/60",
    licence="CC BY 4.0",
    citation="Zen, Dang, Clark, Zhang, Weiss, Jia, Chen, Wu: LibriTTS: a corpus derived from LibriSpeech for "
             "text-to-speech, Interspeech 2019",
    native_rate=24000,
    layout="LibriTTS/<subset>/<speaker>/<chapter>/<speaker>_<chapter>_<paragraph>_<sentence>.wav + "
           ".normalized.txt beside it",
    subsets={
        "dev-clean": Archive(f"{_OPENSLR}/60/dev-clean.tar.gz", int(1.2 * GB), 8.97,
                             "da0864e1bd26debed35da8a869dd5c04dfc27682921936de7cff9c8a254dbe1a"),
        "dev-other": Archive(f"{_OPENSLR}/60/dev-other.tar.gz", 804 * MB, 6.43,
                             "d413eda26f3a152ac7c9cf3658ef85504dfb1b625296e5fa83727f5186cca79c"),
        "test-clean": Archive(f"{_OPENSLR}/60/test-clean.tar.gz", int(1.2 * GB), 8.56,
                              "234ea5b25859102a87024a4b9b86641f5b5aaaf1197335c95090cde04fe9a4f5"),
        "test-other": Archive(f"{_OPENSLR}/60/test-other.tar.gz", 964 * MB, 6.69,
                              "33a5342094f3bba7ccc2e0500b9e72d558f72eb99328ac8debe1d9080402f10d"),
        "train-clean-100": Archive(f"{_OPENSLR}/60/train-clean-100.tar.gz", int(7.7 * GB), 53.78,
                                   "c5608bf1ef74bb621935382b8399c5cdd51cd3ee47cec51f00f885a64c6c7f6b"),
        "train-clean-360": Archive(f"{_OPENSLR}/60/train-clean-360.tar.gz", 27 * GB, 191.29,
                                   "ce7cff44dcac46009d18379f37ef36551123a1dc4e5c8e4eb73ae57260de4886"),
        "train-other-500": Archive(f"{_OPENSLR}/60/train-other-500.tar.gz", 44 * GB, 310.08,
                                   "e35f7e34deeb2e2bdfe4403d88c8fdd5fbf64865cae41f027a185a6965f0a5df"),
    },
    default_subsets=("train-clean-100", "train-clean-360", "dev-clean"),
    subset_split=_LIBRI_SPLIT,
)

VCTK = Corpus(
    name="vctk", title="CSTR VCTK Corpus 0.92", homepage="https://datashare.ed.ac.uk/handle/10283/3443",
    licence="CC BY 4.0",
    citation="Yamagishi, Veaux, MacDonald: CSTR VCTK Corpus: English multi-speaker corpus for CSTR voice "
             "cloning toolkit (version 0.92), University of Edinburgh, 2019",
    native_rate=48000,
    layout="wav48_silence_trimmed/<speaker>/<speaker>_<utterance>_mic1.flac + txt/<speaker>/<speaker>_<utterance>.txt",
    subsets={"all": Archive("https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip",
                            int(11.7 * GB), 44.0,
                            "f96258be9fdc2cbff6559541aae7ea4f59df3fcaf5cf963aae5ca647357e359c")},
    default_subsets=("all",),
    # Val: two speakers; test: VoiceBank-DEMAND's two test speakers (p232, p257) and two more.
    val_speakers=("p226", "p229"),
    test_speakers=("p232", "p257", "p360", "p361"),
)

DAPS = Corpus(
    name="daps", title="DAPS (Device and Produced Speech) dataset, version 1.0",
    homepage="https://zenodo.org/records/4660670", licence="CC BY-NC 4.0 (non-commercial)",
    citation="Mysore: Can we automatically transform speech recorded on common consumer devices in real-world "
             "environments into professional production quality speech?, IEEE Signal Processing Letters 2015",
    native_rate=44100,
    layout="daps/clean/<speaker>_<script>_clean.wav (speakers f1-f10, m1-m10; scripts 1-5)",
    subsets={"all": Archive("https://zenodo.org/records/4660670/files/daps.tar.gz?download=1",
                            int(14.5 * GB), 4.5)},
    default_subsets=("all",),
    val_speakers=("f9", "m9"),
    test_speakers=("f10", "m10"),
)

CORPORA: Dict[str, Corpus] = {c.name: c for c in (LIBRITTS, LIBRISPEECH, VCTK, DAPS)}
