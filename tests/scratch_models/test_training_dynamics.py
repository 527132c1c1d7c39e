"""The training-dynamics demo writes its figures and its diagnoses hold, in its quick mode."""

from __future__ import annotations

import numpy as np

from scratch_models.demos import training_dynamics

MAX_PNG_BYTES = 150_000
FIGURES = ("vanishing-gradients.png", "dead-relus.png", "learning-rate.png")


def test_quick_run_writes_the_figures_and_the_diagnoses_hold(tmp_path):
    summary = training_dynamics.main(["--out", str(tmp_path / "img"), "--quick"])
    for name in FIGURES:
        path = tmp_path / "img" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert path.stat().st_size < MAX_PNG_BYTES, name

    # (a) the deep sigmoid net's first layer gets almost no gradient and it does not learn;
    # ReLU with He init and batchnorm keep the layers' gradients within an order of magnitude
    vanishing = summary["vanishing"]
    broken = vanishing["sigmoid, std 0.01"]
    assert broken["ratio_first_to_last"] < 1e-6
    assert broken["final_loss"] > 0.95 * np.log(10)
    for fixed in ("ReLU, He", "sigmoid, std 0.01, batchnorm"):
        assert vanishing[fixed]["ratio_first_to_last"] > 0.1
        assert vanishing[fixed]["final_loss"] < 0.5 * broken["final_loss"]

    # (b) a -1 bias kills the two deeper layers at the start and nothing revives them;
    # batchnorm does. Too large an Adam step kills more units than a 10x smaller one
    dead = summary["dead_relus"]
    bias = dead["bias -1, SGD lr 0.1"]
    assert bias["dead_at_init"][1:] == [1.0, 1.0] and bias["dead_at_end"][1:] == [1.0, 1.0]
    assert max(dead["bias -1, SGD lr 0.1, batchnorm"]["dead_at_end"]) == 0.0
    too_high, good = dead["Adam lr 0.1"], dead["Adam lr 0.01"]
    assert np.mean(too_high["dead_at_end"]) > 2 * np.mean(good["dead_at_end"])

    # (c) 10x the good learning rate ends with a higher loss, for both optimisers
    lr = summary["learning_rate"]
    assert lr["momentum lr 1.0 (10x)"]["final_loss"] > 10 * lr["momentum lr 0.1"]["final_loss"]
    assert lr["Adam lr 0.1"]["final_loss"] > 2 * lr["Adam lr 0.01"]["final_loss"]
