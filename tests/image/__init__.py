"""Tests of the image models (dac_diveq.image)."""
