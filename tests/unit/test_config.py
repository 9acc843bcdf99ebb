"""The nested run configuration: each section refuses its own bad values in one line, the flat form (stored
by every run, hashed, the CLI's names) round-trips, old stored runs keep their hash, and the CLI builds the
same config as ``from_flat``."""

import copy
import pickle
from dataclasses import asdict
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from anisocert.cli import app
from anisocert.core.settings import Budget, SigmaSearch, ThetaSearch
from anisocert.errors import AnisocertError, UnknownNameError
from anisocert.run.config import FLAT_FIELDS, CertifyConfig, Execution
from tests.unit.test_ancer_objective import OLD, OLD_HASH

MODEL = "builtin:digits-gaussian"
# Settings away from every default, in the flat names (each section gets some).
FLAT = dict(
    model=MODEL, data="digits", split="train", noise="uniform", method="ancer", sigma=0.4, skip=3, max_count=5,
    indices=(4, 2), fallback="both", memory=False, on_inside="adopt", outputs="probabilities",
    sampler="exact", levels=16, round_inputs=True, n0=50, n=3000, alpha=0.01, seed=7, early_stop=False, radii=(1.0, 0.5), radii_on="proxy",
    iso_method="search", iso_iterations=11, iso_lr=0.5, iso_samples=12, iso_sigma_min=0.01,
    iso_sigma_max=2.0, iso_grid_points=5, iso_refine_steps=2,
    ancer_iterations=13, ancer_lr=0.1, ancer_samples=14, ancer_tol=0.01, ancer_patience=3, kappa=1.5,
    ancer_objective="paper", ancer_check_samples=100, ancer_check_steps=2, ancer_check_margin=0.5,
    batch_size=70, inputs_per_batch=3, device="cpu", label="a run", workers=2, ray_address="auto",
    reuse="elsewhere", channels_last=True, bf16=True, compile=True,
)  # fmt: skip


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: Budget(n0=0), "n0=0"),
        (lambda: Budget(n=5), "n=5 can never certify"),
        (lambda: Budget(alpha=1.5), "alpha=1.5"),
        (lambda: Budget(seed=-1), "seed=-1"),
        (lambda: Budget(radii="0.5,-1"), "radii="),
        (lambda: Budget(radii_on="volume"), "radii-on='volume'"),
        (lambda: SigmaSearch(method="newton"), "iso_method='newton'"),
        (lambda: SigmaSearch(iterations=0), "iso-iterations=0"),
        (lambda: SigmaSearch(lr=0.0), "iso-lr=0.0"),
        (lambda: SigmaSearch(sigma_max=float("inf")), "iso-sigma-max=inf"),
        (lambda: ThetaSearch(objective="volume"), "ancer_objective='volume'"),
        (lambda: ThetaSearch(samples=0), "ancer-samples=0"),
        (lambda: ThetaSearch(kappa=-1.0), "kappa=-1.0"),
        (lambda: ThetaSearch(check_margin=float("nan")), "ancer_check_margin=nan"),
        (lambda: Execution(batch_size=0), "batch-size=0"),
        (lambda: Execution(workers=10**7), "workers=10000000"),
        (lambda: Execution(device="tpu"), "--device 'tpu'"),
        (lambda: CertifyConfig(model=MODEL, method="cohen"), "method='cohen'"),
        (lambda: CertifyConfig(model=MODEL, skip=0), "skip=0"),
        (lambda: CertifyConfig(model=MODEL, budget={"n": 10}), "budget={'n': 10} must be a Budget"),
    ],
)
def test_each_section_refuses_its_bad_values_in_one_line(build, words):
    with pytest.raises(AnisocertError) as err:
        build()
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_budget_must_certify_at_the_alpha_of_each_certificate():
    """n = 10 certifies at alpha = 0.001 but not at the alpha / 2 of each certificate of fallback both."""
    assert CertifyConfig.from_flat(model=MODEL, method="ancer", n=10, fallback="select").budget.n == 10
    with pytest.raises(AnisocertError, match="n=10 can never certify at alpha=0.0005"):
        CertifyConfig.from_flat(model=MODEL, method="ancer", n=10, fallback="both")


def test_adam_budget_defaults_follow_the_objective():
    assert (ThetaSearch().iterations, ThetaSearch().samples) == (100, 100)  # the core's: the public ANCER
    certified = ThetaSearch(objective="certified")
    assert (certified.iterations, certified.samples) == (30, 32)
    assert CertifyConfig(model=MODEL).theta_search == certified  # the run's default objective
    paper = CertifyConfig.from_flat(model=MODEL, ancer_objective="paper").theta_search
    assert (paper.iterations, paper.samples) == (100, 100)
    assert ThetaSearch(objective="certified", iterations=7).iterations == 7


def test_the_ancer_settings_left_unnamed_follow_the_data(tmp_path, monkeypatch):
    """certified + select with the cheap Adam budget on the 8x8 digits (where they were chosen); certified +
    off with step 0.2 over 100 steps of 100 draws on real images (docs/results.md), where a named paper
    objective keeps the public step; a named setting always wins, and the CLI chooses as from_flat does."""
    import anisocert.run.runner as runner

    def ancer(config):
        theta = config.theta_search
        return theta.objective, config.fallback, theta.iterations, theta.samples, theta.lr

    digits = CertifyConfig.from_flat(model=MODEL)  # data: digits
    assert ancer(digits) == ("certified", "select", 30, 32, 0.04)
    for data in ("mnist", "mnist:test", "cifar10:/data", "npz:x.npz"):
        config = CertifyConfig.from_flat(model=MODEL, data=data)
        assert ancer(config) == ("certified", "off", 100, 100, 0.2), data
        paper = CertifyConfig.from_flat(model=MODEL, data=data, ancer_objective="paper")
        assert ancer(paper) == ("paper", "off", 100, 100, 0.04), data
    named = CertifyConfig.from_flat(
        model=MODEL, data="mnist", ancer_lr=0.1, ancer_iterations=7, fallback="both"
    )
    assert ancer(named) == ("certified", "both", 7, 100, 0.1)
    seen = []
    monkeypatch.setattr(runner, "certify_dataset", lambda config, out, **kw: seen.append(config))
    cli_runs = [
        ("digits", []),
        ("mnist", []),
        ("mnist", ["--ancer-objective", "paper"]),
        ("mnist", ["--ancer-lr", "0.1"]),
    ]
    for data, options in cli_runs:
        out = str(tmp_path / f"{data}{len(seen)}")
        CliRunner().invoke(
            app, ["certify", "--model", MODEL, "--data", data, "--method", "ancer", *options, "--out", out]
        )
    assert [ancer(c) for c in seen] == [
        ("certified", "select", 30, 32, 0.04),
        ("certified", "off", 100, 100, 0.2),
        ("paper", "off", 100, 100, 0.04),
        ("certified", "off", 100, 100, 0.1),
    ]
    assert seen[1].theta_search == CertifyConfig.from_flat(model=MODEL, data="mnist").theta_search


def test_the_flat_form_round_trips_and_keeps_the_stored_order():
    config = CertifyConfig.from_flat(**FLAT)
    flat = config.to_dict()
    assert tuple(flat) == FLAT_FIELDS and flat == {**FLAT, "radii": (0.5, 1.0), "model_sha256": ""}
    assert CertifyConfig.from_dict(flat) == config == CertifyConfig.from_flat(**flat)
    assert CertifyConfig.from_dict(asdict(config)) == config  # sections stored as dicts read back too
    assert CertifyConfig.from_dict({**flat, "a_setting_of_an_older_release": 1}) == config
    assert config.replace_flat(n=4000).budget == Budget(50, 4000, 0.01, 7, False, (0.5, 1.0), "proxy")


def test_the_nested_config_is_the_flat_one():
    nested = CertifyConfig(
        model=MODEL,
        **dict(data="digits", split="train", noise="uniform", method="ancer", sigma=0.4, skip=3, max_count=5),
        **dict(indices=(4, 2), fallback="both", memory=False, on_inside="adopt", outputs="probabilities"),
        **dict(sampler="exact", levels=16, round_inputs=True),
        budget=Budget(n0=50, n=3000, alpha=0.01, seed=7, early_stop=False, radii="1,0.5", radii_on="proxy"),
        sigma_search=SigmaSearch("search", 11, 0.5, 12, 0.01, 2.0, 5, 2),
        theta_search=ThetaSearch(13, 0.1, 14, 1.5, 0.01, 3, "paper", 100, 2, 0.5),
        execution=Execution(70, 3, "cpu", "a run", 2, "auto", "elsewhere", True, True, True),
    )
    assert nested == CertifyConfig.from_flat(**FLAT)
    assert nested.result_hash() == CertifyConfig.from_flat(**FLAT).result_hash()


def test_a_run_stored_flat_keeps_its_hash_when_built_nested():
    """OLD: a run's config as stored before the nesting (and before the certified objective)."""
    assert CertifyConfig.from_dict(OLD).result_hash() == OLD_HASH
    nested = CertifyConfig(
        model=MODEL,
        noise="gaussian",
        method="ancer",
        sigma=0.25,
        skip=27,
        fallback="both",
        budget=Budget(n=2000),
        sigma_search=SigmaSearch(method="votes"),
        theta_search=ThetaSearch(objective="paper"),
    )
    assert (
        nested.result_hash() == OLD_HASH
        and nested.result_dict() == CertifyConfig.from_dict(OLD).result_dict()
    )
    # computed by the flat CertifyConfig before the nesting (tests/e2e/test_sequential_runs.py)
    assert CertifyConfig(model=MODEL).result_hash() == "712219e7d586c141"


def test_execution_changes_the_hash_only_through_the_forward_pass():
    base = CertifyConfig.from_flat(model=MODEL, method="ancer").result_hash()
    free = dict(batch_size=7, inputs_per_batch=2, label="x", workers=3, ray_address="auto", reuse="r")
    assert CertifyConfig.from_flat(model=MODEL, method="ancer", **free).result_hash() == base
    for name in Execution.HASHED:
        assert CertifyConfig.from_flat(model=MODEL, method="ancer", **{name: True}).result_hash() != base


def test_a_flat_setting_read_the_old_way_says_where_it_lives():
    config = CertifyConfig(model=MODEL)
    with pytest.raises(AttributeError, match=r"CertifyConfig.iso_lr is config.sigma_search.lr"):
        config.iso_lr  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        config.nothing  # noqa: B018
    assert pickle.loads(pickle.dumps(config)) == config == copy.deepcopy(config)  # Ray ships configs


def test_an_unknown_flat_setting_is_named_in_one_line():
    with pytest.raises(UnknownNameError) as err:
        CertifyConfig.from_flat(model=MODEL, ancer_iters=3)
    message = str(err.value)
    assert "'ancer_iters' is not a setting" in message and "'ancer_iterations'" in message
    assert "\n" not in message
    with pytest.raises(UnknownNameError, match="'zzz' is not a setting of CertifyConfig"):
        CertifyConfig.from_flat(model=MODEL, zzz=1)


def test_the_cli_builds_the_config_from_flat_would(tmp_path, monkeypatch):
    """Every option of `certify` lands in its section: the CLI's config equals from_flat's of the same values."""
    import anisocert.run.runner as runner

    seen = []

    def certify_dataset(config, out, **kw):
        seen.append(config)
        return SimpleNamespace(text=lambda: "ok")

    monkeypatch.setattr(runner, "certify_dataset", certify_dataset)
    # (outputs is the loaded model's; the run itself, which would need CUDA and Ray here, does not start)
    options = {
        k: v
        for k, v in FLAT.items()
        if k not in ("indices", "radii", "reuse", "max_count", "outputs", "round_inputs")
    }
    args = ["certify", "--out", str(tmp_path / "r"), "--indices", "4,2", "--radii", "1,0.5", "--max", "5"]
    args += ["--reuse", "elsewhere", "--round"]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        elif value is not None:
            args += [flag, str(value)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen == [CertifyConfig.from_flat(**{**FLAT, "outputs": "logits"})]


def test_the_sampler_keeps_old_hashes_and_changes_new_ones():
    """Stored runs ran the float sampler: read back as such, with their hash; exact runs hash apart."""
    old = CertifyConfig.from_dict(OLD)
    assert old.sampler == "float" and old.result_hash() == OLD_HASH
    assert old.with_grid(16).result_hash() == OLD_HASH  # a float run stays float whatever the data's grid
    assert CertifyConfig(model=MODEL).with_grid(None).result_hash() == "712219e7d586c141"
    exact = CertifyConfig(model=MODEL).with_grid(16)
    assert (exact.sampler, exact.levels) == ("exact", 16)
    assert exact.result_hash() not in ("712219e7d586c141", exact.replace_flat(levels=255).result_hash())
    rounded = exact.replace_flat(round_inputs=True)
    assert rounded.result_hash() != exact.result_hash() and rounded.result_dict()["round_inputs"] is True
    assert CertifyConfig.from_dict(exact.to_dict()) == exact


@pytest.mark.parametrize(
    ("flat", "levels", "words"),
    [
        (dict(sampler="exact"), None, "--sampler exact needs a grid"),
        (dict(sampler="exct"), 16, "sampler='exct' is unknown"),
        (dict(sampler="float", round_inputs=True), 16, "drop it with --sampler float"),
        (dict(levels=0), 16, "levels=0 must be an integer >= 1"),
    ],
)
def test_bad_sampler_settings_are_one_line(flat, levels, words):
    with pytest.raises(AnisocertError, match=words):
        CertifyConfig.from_flat(model=MODEL, **flat).with_grid(levels)
