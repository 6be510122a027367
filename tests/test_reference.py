"""The fp32 numpy reference equals transformers on real sentences."""
import numpy as np
import pytest
import torch

from padless.models import Tokenizer
from padless.reference import encode_fp32, pool


@pytest.mark.slow
def test_reference_matches_transformers_on_real_sentences(minilm, movie_texts):
    import transformers
    model = transformers.AutoModel.from_pretrained(minilm.source["path"], local_files_only=True).eval()
    tok = Tokenizer(minilm.tokenizer_path, minilm.max_positions)
    ids = tok.encode(movie_texts.texts[:12], truncate=True)
    ours = encode_fp32(minilm, ids)
    for seq, h in zip(ids, ours):
        with torch.no_grad():
            ref = model(torch.tensor([seq])).last_hidden_state[0].numpy()
        assert np.abs(ref - h).max() < 1e-4
        e = pool(minilm, h)
        assert abs(float(np.linalg.norm(e)) - 1.0) < 1e-5


def test_tokenizer_has_no_padding_and_checks_input(tiny_spec):
    from padless.errors import InputError
    tok = Tokenizer(tiny_spec.tokenizer_path, 8)
    ids = tok.encode(["good film"])
    assert ids[0][0] == 101 and ids[0][-1] == 102 and 0 not in ids[0]
    with pytest.raises(InputError, match="empty"):
        tok.encode(["   "])
    with pytest.raises(InputError, match="--truncate"):
        tok.encode(["one two three four five six seven eight nine ten"])
    cut = tok.encode(["one two three four five six seven eight nine ten"], truncate=True)[0]
    assert len(cut) == 8 and cut[-1] == 102


def test_embed_rejects_bad_ids(tiny_spec):
    from padless.errors import InputError
    from padless.reference import embed
    with pytest.raises(InputError, match="outside the vocabulary"):
        embed(tiny_spec, [101, tiny_spec.vocab_size, 102])
    with pytest.raises(InputError, match="empty"):
        embed(tiny_spec, [])
    with pytest.raises(InputError, match="longer than"):
        embed(tiny_spec, [101] * (tiny_spec.max_positions + 1))
