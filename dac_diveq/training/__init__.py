"""The training layer both tracks specialise.

* :mod:`.loop` - :class:`~.loop.TrainLoop` and its settings: run / validate / save / resume cadence,
  TensorBoard, exact RNG state of every rank
* :mod:`.checkpoint` - atomic checkpoints in DAC's folder layout, the identity-checked weights
  loader, :func:`~.checkpoint.resolve_weights`, the package's atomic-write helper
* :mod:`.distributed` - ``torchrun`` set-up, DDP wrapping
* :mod:`.sampler` - :class:`~.sampler.StepSampler`, the resumable data order

Nothing here imports a track (codec or image) or audiotools.
"""
