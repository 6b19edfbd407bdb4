"""CPU-credit and I/O-credit ledgers: what a burstable instance and a gp2 volume would have left.

A t3.micro gets two full cores only while it has credits; a gp2 volume gets 3,000 IOPS only while its
I/O bucket lasts. The samplers measure how much CPU and I/O the local servers used; these ledgers turn
each sample into what AWS would book for it (credits earned and spent, balance, surplus) and into the
cap the instance would run under next. Pure arithmetic, so every figure can be checked by hand.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.config import CPU_CREDIT_MODES
from harness.sizing import CpuCredits, StorageSizing

# CloudWatch's names for the credit metrics (EC2/RDS/ElastiCache publish them every 5 minutes).
CREDIT_USAGE = "CPUCreditUsage"
CREDIT_BALANCE = "CPUCreditBalance"
SURPLUS_BALANCE = "CPUSurplusCreditBalance"
SURPLUS_CHARGED = "CPUSurplusCreditsCharged"
CREDITS_EARNED = "cpu_credits_earned"  # ours: CloudWatch publishes no earned figure
CPU_CAP = "cpu_cap_vcpus"  # ours: the CPU the instance may use next (its vCPUs, or the baseline when throttled)


@dataclass(frozen=True)
class CreditStep:
    """One sample booked: credits spent and earned in it, and the ledger after it."""

    spent: float
    earned: float
    balance: float
    surplus_balance: float
    surplus_charged: float  # cumulative
    throttled: bool  # the instance runs at its baseline until it earns credits again
    cap_vcpus: float


@dataclass
class CpuCreditLedger:
    """EC2's credit arithmetic for one instance.

    Earned credits accrue at credits_per_hour and are discarded above max_balance; CPU time spends one
    credit per vCPU-minute. Standard mode: an empty balance throttles the instance to its baseline.
    Unlimited mode: spending beyond the balance borrows surplus credits, which later earnings pay down
    first; surplus beyond what the instance can earn in 24 h (max_balance) is charged at once, and
    whatever is still outstanding is charged when the instance stops (`settle`).
    """

    credits: CpuCredits
    balance: float
    surplus_balance: float = 0.0
    surplus_charged: float = 0.0

    @classmethod
    def starting(cls, credits: CpuCredits, mode: str) -> CpuCreditLedger:
        """`drained` starts empty (what hours of load leave); `off` and `live` start rested (full)."""
        if mode not in CPU_CREDIT_MODES:
            raise ValueError(f"cpu_credits must be one of {', '.join(CPU_CREDIT_MODES)}, got {mode!r}")
        return cls(credits, 0.0 if mode == "drained" else credits.max_balance)

    @property
    def throttled(self) -> bool:
        return self.credits.mode == "standard" and self.balance <= 0.0

    @property
    def cap_vcpus(self) -> float:
        return self.credits.baseline_vcpus if self.throttled else float(self.credits.vcpus)

    def step(self, seconds: float, cpu_seconds: float) -> CreditStep:
        """Book `cpu_seconds` of CPU (summed over vCPUs) used during `seconds` of wall time."""
        if seconds < 0 or cpu_seconds < 0:
            raise ValueError(f"seconds and cpu_seconds must not be negative, got {seconds}, {cpu_seconds}")
        earned = self.credits.credits_per_hour * seconds / 3600.0
        spent = cpu_seconds / 60.0
        net = earned - spent
        if net >= 0:
            repaid = min(net, self.surplus_balance)
            self.surplus_balance -= repaid
            self.balance = min(self.credits.max_balance, self.balance + net - repaid)
        elif self.balance + net >= 0:
            self.balance += net
        elif self.credits.mode == "unlimited":
            self.surplus_balance += -(self.balance + net)
            self.balance = 0.0
            excess = self.surplus_balance - self.credits.max_balance
            if excess > 0:
                self.surplus_charged += excess
                self.surplus_balance = self.credits.max_balance
        else:
            # Standard mode cannot overspend: a sample above the balance is CPU the cap did not stop in
            # time (the cap follows the ledger once per sample); it is booked as the balance's end.
            self.balance = 0.0
        return CreditStep(
            spent, earned, self.balance, self.surplus_balance, self.surplus_charged, self.throttled, self.cap_vcpus
        )

    def settle(self) -> float:
        """Charge the outstanding surplus (what AWS does when the instance stops); returns it."""
        outstanding, self.surplus_balance = self.surplus_balance, 0.0
        self.surplus_charged += outstanding
        return outstanding

    def surplus_usd(self, credits: float | None = None) -> float:
        """USD for surplus credits (default: those charged so far); 60 credits are one vCPU-hour."""
        charged = self.surplus_charged if credits is None else credits
        return charged / 60.0 * self.credits.surplus_usd_per_vcpu_hour


@dataclass(frozen=True)
class IoStep:
    spent: float
    earned: float
    balance: float
    allowed_iops: int


@dataclass
class IoCreditLedger:
    """A gp2 volume's burst bucket: earns `baseline_iops` credits a second up to the bucket's size, each
    I/O spends one; with credits left the volume runs at burst IOPS, without them at baseline."""

    storage: StorageSizing
    balance: float

    @classmethod
    def starting(cls, storage: StorageSizing, mode: str) -> IoCreditLedger:
        if mode not in CPU_CREDIT_MODES:
            raise ValueError(f"cpu_credits must be one of {', '.join(CPU_CREDIT_MODES)}, got {mode!r}")
        return cls(storage, 0.0 if mode == "drained" else float(storage.io_credits_max))

    @property
    def allowed_iops(self) -> int:
        return self.storage.burst_iops if self.storage.bursts and self.balance > 0 else self.storage.baseline_iops

    def step(self, seconds: float, ios: float) -> IoStep:
        if seconds < 0 or ios < 0:
            raise ValueError(f"seconds and ios must not be negative, got {seconds}, {ios}")
        if not self.storage.bursts:
            return IoStep(0.0, 0.0, 0.0, self.storage.baseline_iops)
        earned = self.storage.baseline_iops * seconds
        self.balance = min(float(self.storage.io_credits_max), max(0.0, self.balance + earned - ios))
        return IoStep(ios, earned, self.balance, self.allowed_iops)


# -- the live ledgers outlive one run: they are kept in the state directory --------------------------


@dataclass(frozen=True)
class SavedLedger:
    balance: float
    surplus_balance: float
    surplus_charged: float
    saved_at: float  # wall-clock seconds


@dataclass(frozen=True)
class SavedIoBucket:
    balance: float
    saved_at: float  # wall-clock seconds


def _read_json(path: Path) -> dict[str, object] | None:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def _write_json(path: Path, document: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document))
    tmp.replace(path)


def load_ledger(
    path: Path, credits: CpuCredits, mode: str, now: float, start_balance: float | None = None
) -> CpuCreditLedger:
    """The live ledger as the last run left it, credited for the time since at zero CPU (between runs
    nothing samples the servers, and an idle unit spends next to nothing); a fresh one otherwise, at
    `start_balance` (capped at the maximum) when given, as a live stack configured with one asks."""
    ledger = CpuCreditLedger.starting(credits, mode)
    if mode != "live":
        return ledger
    if start_balance is not None:
        ledger.balance = min(credits.max_balance, max(0.0, start_balance))
    raw = _read_json(path) if path.exists() else None
    try:
        saved = SavedLedger(**raw) if raw is not None else None  # type: ignore[arg-type]
    except TypeError:
        saved = None
    if saved is None:
        return ledger
    ledger.balance, ledger.surplus_balance, ledger.surplus_charged = (
        saved.balance,
        saved.surplus_balance,
        saved.surplus_charged,
    )
    ledger.step(max(0.0, now - saved.saved_at), 0.0)
    return ledger


def save_ledger(path: Path, ledger: CpuCreditLedger, now: float) -> None:
    _write_json(path, asdict(SavedLedger(ledger.balance, ledger.surplus_balance, ledger.surplus_charged, now)))


def load_io_bucket(path: Path, storage: StorageSizing, mode: str, now: float) -> IoCreditLedger:
    """The live gp2 bucket as the last run left it, refilled at the baseline rate for the time since (the
    volume earns credits whether or not anything samples it); a fresh one (full) otherwise. A bucket saved
    for another volume (type or size changed) is not reused."""
    bucket = IoCreditLedger.starting(storage, mode)
    if mode != "live" or not storage.bursts or not path.exists():
        return bucket
    raw = _read_json(path)
    if raw is None or raw.get("io_credits_max") != storage.io_credits_max:
        return bucket
    try:
        saved = SavedIoBucket(float(raw["balance"]), float(raw["saved_at"]))  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        return bucket
    bucket.balance = min(float(storage.io_credits_max), max(0.0, saved.balance))
    bucket.step(max(0.0, now - saved.saved_at), 0.0)
    return bucket


def save_io_bucket(path: Path, bucket: IoCreditLedger, now: float) -> None:
    document: dict[str, object] = {**asdict(SavedIoBucket(bucket.balance, now))}
    document["io_credits_max"] = bucket.storage.io_credits_max
    _write_json(path, document)
