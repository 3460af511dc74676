"""Quality metrics: speech (PESQ, STOI, ...), and codebook statistics."""
