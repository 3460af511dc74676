"""Generated text: deterministic per seed, different across seeds, train/val disjoint."""
import random

from dac_diveq.data.text import generate_sentences, make_sentence, text_split


def test_same_seed_same_text():
    assert generate_sentences(50, seed=3) == generate_sentences(50, seed=3)


def test_different_seeds_different_text():
    a, b = generate_sentences(50, seed=0), generate_sentences(50, seed=1)
    assert a != b
    assert len(set(a) & set(b)) < 5


def test_prefix_does_not_depend_on_n():
    assert generate_sentences(200, seed=0)[:20] == generate_sentences(20, seed=0)


def test_splits_are_disjoint_and_hash_assigned():
    train = generate_sentences(500, seed=0, split="train")
    val = generate_sentences(100, seed=0, split="val")
    assert not set(train) & set(val)
    assert len(set(train)) == 500 and len(set(val)) == 100
    assert all(text_split(s) == "train" for s in train)
    assert all(text_split(s) == "val" for s in val)


def test_lengths_vary_within_bounds():
    rng = random.Random(0)
    counts = [len(make_sentence(rng, 3, 11).split()) for _ in range(300)]
    assert min(counts) >= 3 and max(counts) <= 11
    assert len(set(counts)) >= 6
    sentences = generate_sentences(100, seed=0)
    assert {s[-1] for s in sentences} >= {".", "?"}
    assert all(s[0].isupper() for s in sentences)
