"""advisor/ranking.py: how each method ranks the same per-token log-likelihoods."""

import pytest

from advisor.ranking import alternatives, best_option, distinguishing_lengths, rank_options
from advisor.types import OPTION_RANKINGS

EOT = 2


def test_distinguishing_prefix_ends_where_the_options_part():
    refund, other = [10, 11, EOT], [20, EOT]
    other_long = [20, 28, 30, 31, 32, EOT]
    assert distinguishing_lengths([refund, other]) == [1, 1]
    assert distinguishing_lengths([refund, other_long]) == [1, 1]
    # Sharing a first token: the second decides; a prefix of another option ends with its end-of-turn.
    assert distinguishing_lengths([[5, 6, EOT], [5, 7, EOT]]) == [2, 2]
    assert distinguishing_lengths([[5, EOT], [5, 6, 7, EOT]]) == [2, 2]
    assert distinguishing_lengths([[5, EOT], [5, EOT]]) == [2, 2]  # identical: the whole option


def test_calibrated_prefix_ignores_the_tokens_after_the_options_part():
    """The same label spelled short or long ("other" / "other, ..."): `sum` and `mean` move with
    the length, `calibrated` with the long tail's words; `calibrated_prefix` and `first_token`
    read both spellings only up to where the labels part, so the prediction stays."""
    short_ids, long_ids = [[10, 11, EOT], [20, EOT]], [[10, 11, EOT], [20, 28, 30, 31, EOT]]
    short, ref_short = [[-1.0, -0.1, -0.2], [-1.2, -0.05]], [[-3.0, -0.1, -0.2], [-2.0, -0.5]]
    # The long tail is likelier after this item than after the content-free input.
    long_ = [[-1.0, -0.1, -0.2], [-1.2, -0.05, -0.05, -0.05, -0.05]]
    ref_long = [[-3.0, -0.1, -0.2], [-2.0, -0.5, -0.5, -0.5, -0.5]]
    picks = {m: (best_option(m, short, ref_short, short_ids)[0], best_option(m, long_, ref_long, long_ids)[0])
             for m in OPTION_RANKINGS}
    assert picks == {"calibrated_prefix": (0, 0), "first_token": (0, 0), "sum": (1, 0), "calibrated": (0, 1),
                     "mean": (0, 1)}


def test_every_method_from_the_same_numbers():
    ids = [[10, 11, EOT], [20, EOT]]
    logps, ref = [[-1.0, -2.0, -0.5], [-2.5, -0.1]], [[-2.0, -1.0, -0.5], [-1.0, -0.1]]
    assert rank_options("sum", logps, None, ids)[0] == [-3.5, -2.6]
    assert rank_options("mean", logps, None, ids)[0] == pytest.approx([-3.5 / 3, -1.3])
    assert rank_options("calibrated", logps, ref, ids)[0] == pytest.approx([-0.0, -1.5])
    assert rank_options("calibrated_prefix", logps, ref, ids)[0] == pytest.approx([1.0, -1.5])
    assert rank_options("first_token", logps, None, ids)[0] == [-1.0, -2.5]
    with pytest.raises(ValueError, match="content-free"):
        rank_options("calibrated_prefix", logps, None, ids)
    with pytest.raises(ValueError, match="unknown option ranking"):
        rank_options("longest", logps, None, ids)


def test_alternatives_name_what_every_other_method_picks():
    ids = [[10, 11, EOT], [20, EOT]]
    logps, ref = [[-1.0, -2.0, -0.5], [-2.5, -0.1]], [[-2.0, -1.0, -0.5], [-1.0, -0.1]]
    alt = alternatives(OPTION_RANKINGS, "calibrated", ["refund", "other"], logps, ref, ids)
    assert alt == {"calibrated_prefix": "refund", "mean": "refund", "sum": "other", "first_token": "refund"}
    # Without the content-free numbers the calibrated methods cannot be computed: left out.
    assert set(alternatives(OPTION_RANKINGS, "sum", ["refund", "other"], logps, None, ids)) == {"mean", "first_token"}
