"""The one reader of ``params.yaml``: a typed section per pipeline part, loaded by one strict loader.

``params.yaml`` is the only place defaults are written: every section and key must be there, an
unknown key or a bad value stops with a one-line ``error:`` naming the key (stages, CLI and
service alike). The stages read ``params.yaml`` in the working directory, as DVC runs them; the
CLI defaults to the project's own ``params.yaml`` and model, whatever the working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agecheck.errors import AgecheckError, one_line

#: The checkout this package lives in: the CLI's defaults resolve from here, not from the cwd.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Whether it is a checkout (``params.yaml`` and ``dvc.yaml`` beside the package): installed from a
#: wheel, PROJECT_ROOT is site-packages and there are no default params or model (see :func:`or_default`).
IN_CHECKOUT = (PROJECT_ROOT / "params.yaml").is_file() and (PROJECT_ROOT / "dvc.yaml").is_file()
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"
DEFAULT_MODEL = PROJECT_ROOT / "models" / "age_model.keras"


def or_default(given: str | Path | None, default: Path, option: str) -> Path:
    """``given``, else ``default`` in the checkout; outside one there is none, so a missing ``option``
    (``--params``, an environment variable...) is a one-line error instead of a path in site-packages."""
    if given:
        return Path(given)
    if not IN_CHECKOUT:
        raise AgecheckError(
            f"{option} must be given: agecheck is installed outside its project checkout, "
            "so it has no default parameter file or model"
        )
    return default


#: The age of the Challenge 25 rule: adults this old should pass without ID.
CHALLENGE_AGE = 25.0

Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
Share = Annotated[float, Field(gt=0, lt=1)]


class Section(BaseModel):
    """A block of ``params.yaml``: every key required, unknown keys refused, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(Section):
    sources: dict[str, str] = Field(min_length=1)  # name -> folder with final_files/ + labels.csv


class PhotoLimits(Section):
    """Acceptable photo sizes: refused beyond these before any pixel is decoded."""

    min_side: Positive
    max_pixels: Positive
    max_bytes: Positive
    max_aspect: Annotated[float, Field(ge=1)]  # long side / short side; longer strips: bad_aspect


class AgeRange(Section):
    """Allowed ages, inclusive."""

    min_age: NonNegative
    max_age: NonNegative


class ValidateConfig(PhotoLimits, AgeRange):
    max_side: NonNegative  # shrink larger photos to this long side (0 keeps the size)
    jpeg_quality: Annotated[int, Field(ge=1, le=100)]
    shard_size: Positive
    drop_duplicate_photos: bool
    workers: NonNegative  # 0: one per CPU core


class SplitConfig(Section):
    seed: int
    val_size: Share
    test_size: Share


class MemberConfig(Section):
    """One network of the ensemble: its pretrained backbone, where it is cut, and its own face crop."""

    backbone: str
    pretrained: bool
    weights_path: str
    image_size: Annotated[int, Field(ge=16)]  # side of its crop
    cut_block: Annotated[int, Field(ge=-1)]
    face_scale: Annotated[float, Field(gt=0, le=4)]  # its crop's side / FFHQ's (the centre is align's)
    train: dict[str, Any]  # keys of the `train` block this member trains with instead ({}: none)


class ModelConfig(Section):
    """The released model: one input (the till's crop, cut with ``align`` at ``image_size``) and the
    ensemble of ``members`` inside it, each taking its own crop from that input (stage combine)."""

    image_size: Annotated[int, Field(ge=16)]
    members: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], MemberConfig] = Field(min_length=1)
    heads: list[Annotated[int, Field(ge=1, le=100)]]  # ages a of the under-age heads P(age < a) ([]: none)


class FeaturesConfig(Section):
    batch_size: Positive
    flip: bool


class TrainConfig(Section):
    mode: Literal["cached", "full"]
    head: Literal["dex", "regression"]
    hidden: NonNegative
    dropout: Annotated[float, Field(ge=0, lt=1)]
    lr_head: Annotated[float, Field(gt=0)]
    lr: Annotated[float, Field(gt=0)]
    weight_decay: Annotated[float, Field(ge=0)]
    head_epochs: NonNegative
    epochs: Positive
    warmup_epochs: Annotated[float, Field(ge=0)]
    batch_size: Positive
    patience: Positive
    seed: int
    threads: Positive  # CPU threads per op: fixed, so the weights do not depend on the machine's cores
    flip: bool
    tta_flip: bool
    loss: Literal["l1", "ldl"]
    ldl_sigma: Annotated[float, Field(gt=0)]
    ldl_weight: Annotated[float, Field(ge=0)]
    age_balance: Annotated[float, Field(ge=0, le=1)]  # weight of a photo: (photos in its age band) ** -this

    @model_validator(mode="after")
    def _ldl_needs_dex(self) -> TrainConfig:
        if self.loss == "ldl" and self.head != "dex":
            raise ValueError("loss: ldl needs head: dex")
        return self


class PeerConfig(Section):
    """A ready-made age model to beat (never the product), at the face crop chosen for it on val."""

    network: Literal["faceres", ""]  # faceres: HSE FaceRes' own age head ('': no peer)
    face_scale: Annotated[float, Field(gt=0, le=4)]


class EvaluateConfig(Section):
    batch_size: Positive
    whole_photos: str  # folder (final_files/) of the uncropped originals of test photos ('': none)
    whole_source: str  # the source whose test photos they are (joined by file name)
    frames: bool  # also run every test photo inside a synthetic 640x480 till frame
    seed: int  # placement of the faces in the frames


class PolicyConfig(Section):
    """Challenge 25: ask for ID under ``threshold``; alcohol is legal from ``legal_age``."""

    threshold: Annotated[float, Field(gt=0)]
    legal_age: Annotated[float, Field(gt=0)]
    max_minor_pass_rate: Annotated[float, Field(ge=0, lt=1)]
    # threshold: ask when the estimated age is under `threshold`; heads: when P(age < threshold) is at
    # least `heads_cut` (from the model's under-age head for that age, else from its softmax)
    rule: Literal["threshold", "heads"]
    heads_cut: Share
    max_teen_pass_rate: Annotated[float, Field(ge=0, lt=1)]  # the rules' operating points on val (evaluate)

    @model_validator(mode="after")
    def _legal_age_first(self) -> PolicyConfig:
        if self.legal_age > self.threshold:
            raise ValueError(f"legal_age ({self.legal_age}) must not exceed threshold ({self.threshold})")
        return self

    @property
    def adult_age(self) -> float:
        """Customers this old or older should not need to show ID: the rule's 25, whatever
        ``threshold`` the till uses, so that the adult rates of two thresholds compare one group."""
        return CHALLENGE_AGE


class DetectConfig(Section):
    """The face detector (BlazeFace)."""

    model: Literal["short", "full", "full_sparse"]
    min_score: Share
    nms_iou: Share
    min_face: Positive
    max_faces: Positive
    retry_padding: Annotated[float, Field(ge=0, le=2)]  # no face: look again with this border (0: never)
    tiles: Annotated[int, Field(ge=1, le=4)]  # large photos: also search tiles x tiles overlapping tiles


class AlignConfig(Section):
    """The one face geometry: how a found face is rotated, scaled and cut for the model."""

    face_scale: Annotated[float, Field(gt=0, le=4)]  # crop side / FFHQ's crop side (1: hair and neck in)
    centre_shift: Annotated[float, Field(ge=-1, le=1)]  # crop centre: eye midpoint + this x eye-to-mouth


class ServeConfig(PhotoLimits):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)]
    workers: Positive
    batch_size: Positive
    batch_wait_ms: Annotated[float, Field(ge=0)]
    cpu_threads: Positive
    interval: Share  # coverage of the age interval
    token_env: str  # environment variable with the API token ('': none read)
    token_file: str  # file with the API token(s), one per line ('': none)
    open_docs: bool  # /docs and /openapi.json without a token
    max_in_flight: Positive  # predictions served at once; more are refused at once (503)
    retry_after_s: Positive  # Retry-After of those 503s
    timeout_s: Annotated[float, Field(gt=0)]  # a prediction taking longer is answered 503
    estimates_log: str  # file the service appends one line per photo to ('': no log)


class AuditSimulationConfig(Section):
    """A simulated month of alcohol sales (``agecheck.audit.simulate``): the stores, the customers' ages,
    how often an honest cashier asks for ID, and what a dishonest one skips."""

    stores: Positive
    cashiers: Annotated[int, Field(ge=2)]  # per store: a cashier is compared with the others
    dishonest: NonNegative  # per store
    sales: Positive  # alcohol sales per cashier and month
    skip: Annotated[float, Field(ge=0, le=1)]  # share of an honest cashier's checks a dishonest one skips
    months: Positive
    seed: int
    mix_ages: tuple[NonNegative, ...] = Field(min_length=1)  # lower ends of the customers' age bands...
    mix_shares: tuple[Annotated[float, Field(ge=0)], ...]  # ...and each band's share of the sales
    ask_ages: tuple[NonNegative, ...] = Field(min_length=1)  # lower ends of the true-age bands...
    ask_rates: tuple[Annotated[float, Field(ge=0, le=1)], ...]  # ...and an honest cashier's P(ask for ID)
    skip_curve: tuple[Annotated[float, Field(ge=0, le=1)], ...] = Field(min_length=1)
    sales_curve: tuple[Positive, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _bands(self) -> AuditSimulationConfig:
        for ages, values, names in (
            (self.mix_ages, self.mix_shares, "mix_ages and mix_shares"),
            (self.ask_ages, self.ask_rates, "ask_ages and ask_rates"),
        ):
            if len(ages) != len(values):
                raise ValueError(f"{names} must have the same length")
            if list(ages) != sorted(set(ages)):
                raise ValueError(f"{names.split()[0]} must increase")
        if abs(sum(self.mix_shares) - 1) > 1e-6:
            raise ValueError(f"mix_shares must add up to 1 (got {sum(self.mix_shares):g})")
        if self.ask_ages[0] != 0:
            raise ValueError("ask_ages must start at 0 (every customer has an asking rate)")
        if self.dishonest > self.cashiers:
            raise ValueError(f"dishonest ({self.dishonest}) must not exceed cashiers ({self.cashiers})")
        return self


class AuditConfig(Section):
    """The cashier audit: the false discovery rate of the flags, the fewest sales judged, the review list."""

    fdr: Share  # flagged: Benjamini-Hochberg q value <= this
    min_sales: Positive  # under-threshold alcohol sales needed (cashier and rest of store), else too few
    review: NonNegative  # unchecked alcohol sales listed for review
    simulation: AuditSimulationConfig


class SegmentsScenario(Section):
    """A simulated month of the shopping profiles: who shops, and whether what they buy depends on age."""

    mix: tuple[Annotated[float, Field(ge=0)], ...] = Field(min_length=2)  # share of sales per true group
    depends_on_age: bool  # false: every category is bought at its average rate, whatever the age


class SegmentsSimulationConfig(Section):
    """Simulated sales with the test photos as customers (``agecheck.segments.simulate``)."""

    sales: Positive  # per scenario
    seed: int
    log_sales: Positive  # sales of the demo receipts and estimates log for `agecheck segments`
    categories: dict[str, tuple[Annotated[float, Field(ge=0, le=1)], ...]] = Field(min_length=1)
    scenarios: dict[str, SegmentsScenario] = Field(min_length=1)


class SegmentsConfig(Section):
    """The shopping profiles: the marketing age groups, the fewest sales a group is judged on, the
    bootstrap, and the simulation that measures the correction."""

    groups: tuple[Positive, ...] = Field(min_length=1)  # first ages of the groups; under the first: apart
    min_age: NonNegative  # the youngest shopper: validation photos under it are left out of the correction
    min_sales: Positive  # a group with fewer sales (estimated or corrected) is marked "too few sales"
    iterations: Positive  # EM steps of the correction, from equal groups (more: less pull, more noise)
    bootstrap: Annotated[int, Field(ge=20)]  # resamples of the customers (and of the validation photos)
    seed: int
    simulation: SegmentsSimulationConfig

    @model_validator(mode="after")
    def _per_group(self) -> SegmentsConfig:
        if list(self.groups) != sorted(set(self.groups)):
            raise ValueError("groups must increase")
        if self.min_age >= self.groups[0]:
            raise ValueError(f"min_age ({self.min_age}) must be under the first group ({self.groups[0]})")
        width = len(self.groups) + 1  # the under-18s first
        sim = self.simulation
        for name, rates in sim.categories.items():
            if len(rates) != width:
                raise ValueError(
                    f"simulation.categories.{name}: one rate per group, under-{self.groups[0]}s "
                    f"first ({width}), got {len(rates)}"
                )
        for name, scenario in sim.scenarios.items():
            if len(scenario.mix) != width:
                raise ValueError(
                    f"simulation.scenarios.{name}.mix: one share per group, under-"
                    f"{self.groups[0]}s first ({width}), got {len(scenario.mix)}"
                )
            if abs(sum(scenario.mix) - 1) > 1e-6:
                raise ValueError(
                    f"simulation.scenarios.{name}.mix must add up to 1 (got {sum(scenario.mix):g})"
                )
        return self


class Params(Section):
    """The whole ``params.yaml``."""

    data: DataConfig
    validate_: ValidateConfig = Field(alias="validate")  # `validate` is a BaseModel method
    split: SplitConfig
    model: ModelConfig
    features: FeaturesConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    peer: PeerConfig
    policy: PolicyConfig
    detect: DetectConfig
    align: AlignConfig
    serve: ServeConfig
    audit: AuditConfig
    segments: SegmentsConfig

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, protected_namespaces=())

    @model_validator(mode="after")
    def _members_inside_the_till_crop(self) -> Params:
        for name, member in self.model.members.items():
            unknown = sorted(set(member.train) - set(TrainConfig.model_fields))
            if unknown:
                raise ValueError(f"model.members.{name}.train: unknown train keys {', '.join(unknown)}")
            try:
                self.member_train(name)
            except ValidationError as err:
                raise ValueError(f"model.members.{name}.train: {_problem(err.errors()[0])}") from None
            if member.face_scale > self.align.face_scale + 1e-9:
                raise ValueError(
                    f"model.members.{name}.face_scale ({member.face_scale:g}) must not exceed "
                    f"align.face_scale ({self.align.face_scale:g}): each member's crop is cut from the till's"
                )
        return self

    def member(self, name: str) -> MemberConfig:
        """The member ``name`` of ``model.members``; a one-line error for an unknown one."""
        try:
            return self.model.members[name]
        except KeyError:
            known = ", ".join(self.model.members)
            raise AgecheckError(f"unknown model member {name!r}: model.members has {known}") from None

    def member_train(self, name: str) -> TrainConfig:
        """The `train` block as member ``name`` trains: with its own ``train`` keys over it."""
        return TrainConfig.model_validate({**self.train.model_dump(), **self.member(name).train})

    def member_align(self, name: str) -> AlignConfig:
        """The face geometry of member ``name``: its own scale around the till crop's centre."""
        return AlignConfig(face_scale=self.member(name).face_scale, centre_shift=self.align.centre_shift)


def _problem(error: dict) -> str:
    """One pydantic error as ``key.path: what is wrong``."""
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{key}: unknown key"
    if kind == "missing":
        return f"{key}: missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error" or "input" not in error:
        return f"{key}: {message}"
    return f"{key}: {message} (got {error['input']!r})"


def parse_params(raw: object, origin: str = "params.yaml") -> Params:
    """Check a parsed parameter mapping; :class:`AgecheckError` naming the first bad key."""
    if not isinstance(raw, dict):
        raise AgecheckError(f"{origin} must hold a mapping of sections")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        problems = [_problem(e) for e in err.errors()]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise AgecheckError(f"{origin}: {problems[0]}{more}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and check the parameter file (default: ``params.yaml`` in the working directory)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AgecheckError(f"parameter file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise AgecheckError(f"cannot read {path}: {err}") from None
    except yaml.YAMLError as err:
        raise AgecheckError(f"{path} is not valid YAML: {one_line(err)}") from None
    return parse_params(raw, str(path))
