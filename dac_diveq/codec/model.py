"""The codec: DAC's encoder and decoder around our residual quantizer."""

import math
from typing import List, Optional, Union

import torch
from dac.model.dac import DAC, init_weights

from ..errors import ConfigError
from ..quantize.options import COMMON_OPTIONS, options_of, takes_quantizer_options
from ..training.checkpoint import SafeLoad
from .dac_layers import ResidualVectorQuantize

#: The generator's folder in a training checkpoint (``save_path/<tag>/diveqdac/weights.pth``).
GENERATOR = "diveqdac"
#: DAC's loudness level (LUFS): what its recipe trains at and its ``compress`` normalises to.
DAC_LOUDNESS_DB = -16.0


def parse_level(text) -> Union[str, float, None]:
    """A ``--loudness_db`` value: ``"model"``, ``None`` (``"raw"``: the input's own level) or LUFS.

    Raises:
        ConfigError: anything else (one line).
    """
    if text is None or (isinstance(text, str) and text.strip().lower() == "raw"):
        return None
    if isinstance(text, str) and text.strip().lower() == "model":
        return "model"
    try:
        level = float(text)
    except (TypeError, ValueError):
        raise ConfigError(f"expected model, raw or a level in LUFS, got {text!r}") from None
    if not (math.isfinite(level) and -70 <= level <= 0):
        raise ConfigError(f"a level in LUFS lies between -70 and 0, got {text!r}")
    return level


#: DAC's command-line window (s): ``encode``, evaluation and the ceiling compress in windows this long.
WINDOW_S = 5.0


def dac_architecture(model: DAC) -> dict:
    """The ``dac.model.DAC`` constructor arguments that describe ``model``'s architecture."""
    return dict(
        encoder_dim=model.encoder_dim,
        encoder_rates=list(model.encoder_rates),
        latent_dim=model.latent_dim,
        decoder_dim=model.decoder_dim,
        decoder_rates=list(model.decoder_rates),
        n_codebooks=model.n_codebooks,
        codebook_size=model.codebook_size,
        codebook_dim=model.codebook_dim,
        quantizer_dropout=float(getattr(model.quantizer, "quantizer_dropout", 0.0)),
        sample_rate=model.sample_rate,
    )


@takes_quantizer_options(COMMON_OPTIONS, lookup="cosine")
class DiVeQDAC(SafeLoad, DAC):
    """``dac.model.DAC`` whose residual quantizer uses a selectable estimator.

    Same constructor arguments, forward dict, ``compress``/``decompress`` (``CodecMixin``) and
    ``save``/``load`` (audiotools ``BaseModel``) as DAC, plus the quantizer's method and options.
    The defaults are the paper's recommendations (DiVeQ, sigma^2 = 1e-3; SF-DiVeQ skip 1000 /
    average 50); ``lookup="cosine"`` keeps DAC's own rule, ``"euclidean"`` is the paper's.

    Args:
        encoder_dim, encoder_rates, latent_dim, decoder_dim, decoder_rates, n_codebooks,
        codebook_size, codebook_dim, quantizer_dropout, sample_rate: as ``dac.model.DAC``.
        method: quantization method (see :data:`dac_diveq.quantize.METHODS`, and
            :data:`~dac_diveq.quantize.BASELINES`: ``fsq`` with ``fsq_levels``, ``simvq``).
        loudness_db: the loudness (LUFS) the codec trains at: training data are normalised to it
            and ``compress`` normalises its input to it (DAC: -16). The model has no normalisation
            layer of its own, so audio at another level is audio it never heard.
        residual_mode: ``"stagewise"`` (DAC), ``"stagewise_hard"`` (DiVeQ) or ``"joint"`` (DiVeQ and
            SF-DiVeQ; see :class:`~dac_diveq.codec.dac_layers.ResidualVectorQuantize`).
        lookup, noise_var, replace_every, replace_every_after, replace_slowdown_at, replace_stop_before_end,
        discard_threshold, skip_iters, avg_iters, latents_per_code, ema_decay, kl_weight:
            :class:`~dac_diveq.quantize.Quantizer` options (:data:`~dac_diveq.quantize.options.COMMON_OPTIONS`),
            with the core's defaults except ``lookup="cosine"``, DAC's rule.
    """

    def __init__(
        self,
        encoder_dim: int = 64,
        encoder_rates: List[int] = [2, 4, 8, 8],
        latent_dim: int = None,
        decoder_dim: int = 1536,
        decoder_rates: List[int] = [8, 8, 4, 2],
        n_codebooks: int = 9,
        codebook_size: int = 1024,
        codebook_dim: Union[int, list] = 8,
        quantizer_dropout: float = 0.0,
        sample_rate: int = 44100,
        method: str = "diveq",
        residual_mode: str = "stagewise",
        loudness_db: float = DAC_LOUDNESS_DB,
        **options,
    ) -> None:
        super().__init__(encoder_dim, encoder_rates, latent_dim, decoder_dim, decoder_rates, n_codebooks,
                         codebook_size, codebook_dim, quantizer_dropout, sample_rate)
        # Stored under their argument names: audiotools' save() reads them back as kwargs.
        self.quantizer_dropout = quantizer_dropout
        self.method = method
        self.residual_mode = residual_mode
        level = parse_level(loudness_db) if isinstance(loudness_db, (int, float)) else None
        if not isinstance(level, float):  # one rule for a level, here and on the command lines
            raise ConfigError(f"loudness_db must be a level in LUFS between -70 and 0, got {loudness_db!r}")
        self.loudness_db = level
        self.quantizer = ResidualVectorQuantize(
            input_dim=self.latent_dim,
            n_codebooks=n_codebooks,
            codebook_size=codebook_size,
            codebook_dim=codebook_dim,
            quantizer_dropout=quantizer_dropout,
            method=method,
            residual_mode=residual_mode,
            **options,
        )
        self.quantizer.apply(init_weights)

    def quantizer_config(self) -> dict:
        """``method``, ``residual_mode`` and every quantizer option: what :func:`~.register.from_dac`
        needs to rebuild this quantizer around other (e.g. pretrained) weights."""
        return {"method": self.method, "residual_mode": self.residual_mode, **options_of(self)}

    def forward(self, audio_data: torch.Tensor, sample_rate: Optional[int] = None,
                n_quantizers: Optional[int] = None) -> dict:
        """DAC's forward dict plus ``vq/kl_loss`` (Gumbel) and per-stage ``vq/stage{i}/...`` metrics."""
        out = super().forward(audio_data, sample_rate, n_quantizers)
        out.update(self.quantizer.extra_losses)
        out["vq/metrics"] = self.quantizer.metrics
        return out

    @torch.no_grad()
    def reconstruct_unquantized(self, audio_data: torch.Tensor, sample_rate: Optional[int] = None) -> torch.Tensor:
        """Audio through the encoder, every stage's projections and the decoder, with no codebook
        lookup: the continuous bottleneck a run trains during its warm-up (``skip_iters``), i.e.
        the quality ceiling of this architecture and training before quantization costs anything.

        Args:
            audio_data: ``B x 1 x T`` waveform.
            sample_rate: must be the model's (DAC's ``preprocess`` checks it).

        Returns:
            The decoded ``B x 1 x T'`` waveform.
        """
        length = audio_data.shape[-1]
        z = self.encoder(self.preprocess(audio_data, sample_rate))
        z_q, residual = 0, z
        for stage in self.quantizer.quantizers:
            z_q_i = stage.out_proj(stage.in_proj(residual))
            z_q, residual = z_q + z_q_i, residual - z_q_i
        return self.decoder(z_q)[..., :length]

    def set_total_iters(self, total_iters: int) -> None:
        """Tell every stage the planned training length (replacement stops before the end)."""
        for vq in self.quantizer.quantizers:
            vq.codebook.set_total_iters(total_iters)

    @property
    def frame_rate(self) -> float:
        """Code frames per second."""
        return self.sample_rate / self.hop_length

    def bitrate(self, n_quantizers: Optional[int] = None) -> float:
        """Bits per second with ``n_quantizers`` codebooks (all by default)."""
        n = self.n_codebooks if n_quantizers is None else min(n_quantizers, self.n_codebooks)
        return self.frame_rate * n * math.log2(self.codebook_size)

    def level(self, normalize_db="model") -> Optional[float]:
        """The level ``compress`` normalises to for a ``--loudness_db`` value (see :func:`parse_level`)."""
        level = parse_level(normalize_db)
        return self.loudness_db if level == "model" else level

    @torch.no_grad()
    def compress(self, audio_path_or_signal, win_duration: float = WINDOW_S, verbose: bool = False,
                 normalize_db="model", n_quantizers: Optional[int] = None):
        """DAC's ``compress`` at the level the codec trained at.

        Args:
            audio_path_or_signal, win_duration, verbose, n_quantizers: as ``CodecMixin.compress``
                (the window defaults to the command line's, 5 s, not DAC's method default of 1 s).
            normalize_db: ``"model"`` (default): :attr:`loudness_db`; a number: that level; None: the
                input's own level (no normalisation).

        Returns:
            DAC's ``DACFile`` (``input_db`` restores the input's loudness on decompression).
        """
        from pathlib import Path

        from audiotools import AudioSignal

        level = self.level(normalize_db)
        signal = audio_path_or_signal
        if isinstance(signal, (str, Path)):  # as CodecMixin.compress reads a path
            signal = AudioSignal.load_from_file_with_ffmpeg(str(signal))
        # Read by preprocess while this compress runs (DAC's compress offers no other hook).
        self._decode_target = (int(signal.signal_length), int(signal.sample_rate))
        try:
            return super().compress(signal, win_duration, verbose, level, n_quantizers)
        finally:
            self._decode_target = None

    def preprocess(self, audio_data: torch.Tensor, sample_rate: Optional[int] = None) -> torch.Tensor:
        """DAC's ``preprocess`` (right-pad to whole frames); inside :meth:`compress`, for an
        unchunked file, padded further to the frames stock DAC's ``decompress`` needs to return
        the whole input (see :mod:`.framing`: DAC's decoder returns 8 samples fewer than
        ``frames * hop`` at 16 and 24 kHz, and its ``decompress`` then fails)."""
        from .framing import stock_decodable_frames

        audio_data = super().preprocess(audio_data, sample_rate)
        target = getattr(self, "_decode_target", None)
        if target is None or not self.padding:  # training, or a chunk (chunked files decode unpadded)
            return audio_data
        frames = stock_decodable_frames(self, *target)
        extra = frames * self.hop_length - audio_data.shape[-1]
        return torch.nn.functional.pad(audio_data, (0, extra)) if extra > 0 else audio_data

    @torch.no_grad()
    def decompress(self, obj, verbose: bool = False):
        """DAC's ``decompress`` (codes -> ``AudioSignal`` at the file's sample rate), returning
        exactly ``original_length`` samples per channel.

        Two differences from ``CodecMixin.decompress``: with odd decoder strides (e.g. rates
        [8, 5, 4, 2]) the padded decoder returns a few samples fewer than the encoder consumed,
        which made DAC's final reshape fail for files shorter than the window; that tail (less
        than one frame) is filled with zeros here. And the channels of a multichannel file are
        loudness-normalised together, as ``compress`` measured them, not one by one.

        Raises:
            ValueError: if the codes cover less than the file's length (by more than a frame).
            codec_io.InputError: ``obj`` is a path to an invalid (or hostile) ``.dac`` file.
        """
        from pathlib import Path

        import tqdm
        from audiotools import AudioSignal
        from .codec_io import load_dac  # codec_io imports this module

        self.eval()
        if isinstance(obj, (str, Path)):  # never DACFile.load: it unpickles with allow_pickle=True
            obj = load_dac(Path(obj))[0]
        codes, chunk = obj.codes, obj.chunk_length
        original_padding = self.padding
        self.padding = obj.padding
        try:
            starts = range(0, codes.shape[-1], chunk)
            pieces = []
            for i in tqdm.tqdm(starts) if verbose else starts:
                z = self.quantizer.from_codes(codes[..., i:i + chunk].to(self.device))[0]
                pieces.append(self.decode(z).to(codes.device))
        finally:
            self.padding = original_padding
        audio = torch.cat(pieces, dim=-1)  # (batch * channels) x 1 x samples
        signal = AudioSignal(audio.reshape(-1, obj.channels, audio.shape[-1]), self.sample_rate)
        signal.normalize(obj.input_db)
        signal.resample(obj.sample_rate)
        missing = obj.original_length - signal.signal_length
        if missing > self.hop_length * obj.sample_rate / self.sample_rate + 1:
            raise ValueError(f"the codes decode to {signal.signal_length} samples, "
                             f"the file needs {obj.original_length}")
        audio = torch.nn.functional.pad(signal.audio_data, (0, max(missing, 0)))
        return AudioSignal(audio[..., :obj.original_length], obj.sample_rate)
