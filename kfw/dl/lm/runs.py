"""``kfw lm train`` and ``kfw lm sample``: our GPT, the run store, and reading a run back."""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kfw.core.runstore import RunStore, config_key, environment
from kfw.dl.gpt import GPT, GPTConfig
from kfw.dl.lm.config import LMConfig, Runtime
from kfw.dl.lm.data import TRAIN_FRACTION, check_length, fit_tokenizer, read_text
from kfw.dl.lm.loop import load_checkpoint, train
from kfw.dl.lm.shards import token_streams
from kfw.dl.tokenize import tokenizer_from_dict
from kfw.dl.weights import file_sha256, load_weights, read_state_dict
from kfw.errors import ConfigError, DataError, KfwError
from kfw.pipeline.mirror import Mirror
from kfw.progress import NULL, Callback

CHECKPOINT = "checkpoint.pt"


# ---------------------------------------------------------------------------------------------
# the command: kfw lm train


def slug_for(corpus: Path) -> str:
    """The run store's competition slug of a corpus: ``lm-<stem>``."""
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(corpus).stem.lower())
    return f"lm-{stem or 'corpus'}"


def build_model(cfg: LMConfig, vocab_size: int, fused: bool = False) -> nn.Module:
    """Our GPT for ``cfg`` and a tokenizer of ``vocab_size`` ids (seed the global RNG first)."""

    return GPT(gpt_config(cfg, vocab_size, fused))


def gpt_config(cfg: LMConfig, vocab_size: int, fused: bool = False) -> Any:
    """The model's shape: ``cfg``'s, the embedding sized for ``vocab_size`` ids and padded."""
    return GPTConfig(
        vocab_size=cfg.model_vocab(vocab_size),
        block_size=cfg.block_size,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd=cfg.n_embd,
        dropout=cfg.dropout,
        bias=cfg.bias,
        pos=cfg.pos,
        fused=fused,
    )


def set_threads(runtime: Runtime) -> None:
    """CPU threads: ``runtime.threads``, else every core (torch's default may be fewer)."""
    if torch.device(runtime.device or "cpu").type == "cpu":
        torch.set_num_threads(runtime.threads or os.cpu_count() or 1)


def train_lm(
    corpus: Path,
    kfw_home: Path,
    cfg: LMConfig,
    *,
    seed: int = 1337,
    runtime: Runtime | None = None,
    callback: Callback = NULL,
    wandb: bool = True,
    init: str | Path | None = None,
) -> dict[str, Any]:
    """``kfw lm train``: train (or resume), save the run in the store, mirror it to W&B.

    The partial run lives in ``runs/lm-<stem>/.partial/<key>/checkpoint.pt`` where the key
    hashes the corpus bytes, the resolved config, the seed and the runtime switches that
    change the numbers; the same command finds it and continues. Returns the run record.

    ``init`` fine-tunes: the model starts from the weights of an earlier run (its id or
    folder) or of a file (:func:`kfw.dl.weights.read_state_dict`), see :func:`find_parent`.
    The parent's bytes (their SHA-256) join the key, and the record keeps ``parent`` (the run
    id, or the file's path) and ``parent_sha256``.
    """

    cfg.check()
    rt = (runtime or Runtime()).resolved(cfg)
    text, sha = read_text(corpus)
    slug = slug_for(corpus)
    store = RunStore(kfw_home, slug)
    parent = find_parent(init, kfw_home, cfg, text) if init is not None else None
    key_src = {"corpus": sha, "config": asdict(cfg), "seed": seed, "runtime": rt.key()}
    if parent is not None:  # a run from scratch keeps the key it always had
        key_src["init"] = parent.sha256
    key = config_key(key_src)
    partial = store.root / ".partial" / key
    ckpt = partial / CHECKPOINT
    saved_tok = None
    if ckpt.is_file():  # the tokenizer comes back with the run: BPE is not retrained
        state = load_checkpoint(ckpt)
        tok_dict = (state.get("meta") or {}).get("tokenizer")
        if not isinstance(tok_dict, dict) or (state.get("meta") or {}).get("key_src") != key_src:
            raise KfwError(
                f"checkpoint {ckpt} was written by another configuration; delete it to start over"
            )
        saved_tok = tokenizer_from_dict(tok_dict)
        callback.info(f"resuming from {ckpt} (step {state['iter']})")
    elif parent is not None:
        saved_tok = parent.tokenizer
    set_threads(rt)
    tokenizer = saved_tok or fit_tokenizer(text, cfg)
    vocab = cfg.model_vocab(tokenizer.vocab_size)  # a too-small vocab_size fails here
    train_ids, val_ids, shards = token_streams(
        text, sha, tokenizer, tokenizer.vocab_size, Path(kfw_home) / "work", TRAIN_FRACTION,
        check=lambda n, n_val: check_length(Path(corpus), cfg, n, n_val),
    )  # fmt: skip
    n_tokens = len(train_ids) + len(val_ids)
    torch.manual_seed(seed)
    model = build_model(cfg, tokenizer.vocab_size, fused=rt.fused)
    if parent is not None:  # checked before anything is written: a mismatch leaves no trace
        parent.check_config(gpt_config(cfg, tokenizer.vocab_size))
        load_weights(model, parent.state, parent.source)
        callback.info(f"initialised from {parent.source}")
    n_params = _count(model)  # every parameter, the tied embedding once
    switches = [
        s for s, on in (("bf16", rt.amp), ("compiled", rt.compile), ("sdpa", rt.fused)) if on
    ]
    callback.info(
        f"{slug}: {n_tokens:,} {cfg.tokenizer} tokens (vocabulary {tokenizer.vocab_size}"
        f"{f', embedding {vocab}' if vocab != tokenizer.vocab_size else ''}), "
        f"GPT {cfg.n_layer}x{cfg.n_head}x{cfg.n_embd} {cfg.pos} positions, {n_params / 1e6:.2f}M "
        f"parameters, {cfg.step_tokens:,} tokens a step"
        f"{f' ({cfg.micro_steps} micro-batches)' if cfg.micro_steps > 1 else ''}, "
        f"{', '.join([rt.device or 'cpu', *switches])}"
    )
    meta = {"key_src": key_src, "tokenizer": tokenizer.to_dict()}
    result = train(
        model, train_ids, val_ids, cfg, seed=seed, runtime=rt, callback=callback,
        checkpoint=ckpt, meta=meta,
    )  # fmt: skip
    run_id = store.new_id(f"gpt-{cfg.pos}-{cfg.tokenizer}", key)
    record = {
        "id": run_id,
        "competition": slug,
        "kind": "lm",
        "model": "gpt",
        "label": f"gpt-{cfg.pos}-{cfg.tokenizer}",
        "corpus": str(Path(corpus).resolve()),
        "corpus_sha256": sha,
        "config": asdict(cfg),
        "runtime": asdict(rt),
        "seed": seed,
        "key": key,
        "git_commit": None,
        "versions": None,
        "n_params": n_params,
        "vocab_size": tokenizer.vocab_size,
        "n_tokens": {"train": len(train_ids), "val": len(val_ids)},
        "tokens_per_step": cfg.step_tokens,
        "micro_steps": cfg.micro_steps,
        "shards": str(shards),
        "losses": result.losses,
        "val_loss": result.val_loss,
        "unit": "nats per character" if cfg.tokenizer == "char" else "nats per token",
        "metric": "val_loss",
        "score": result.val_loss,
        "greater_is_better": False,
        "seconds": result.seconds,
        "train_seconds": result.train_seconds,
        "tokens_per_s": result.tokens_per_s,
        "mfu": result.mfu,
        "peak": result.peak,
        "resumed_from": result.resumed_from,
        "parent": parent.name if parent is not None else None,
        "parent_sha256": parent.sha256 if parent is not None else None,
    }
    env = environment()
    record["git_commit"] = env.pop("git_commit")
    record["versions"] = env
    files = {
        "model.pt": model_bytes(model, cfg, tokenizer),
        "losses.csv": losses_csv(result.losses),
    }
    run_dir = store.save(record, files)
    # the run is published whole: its checkpoint has done its job
    ckpt.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        partial.rmdir()
        partial.parent.rmdir()  # .partial/ itself, when no other run is in progress
    return Mirror(kfw_home, enabled=wandb)(record, run_dir, callback)


@dataclass
class Parent:
    """The weights a fine-tune starts from, and where they came from.

    Attributes
    ----------
    name : str
        The parent run's id, or the weight file's absolute path.
    source : str
        How error messages name it (``parent run ID`` or ``weights PATH``).
    sha256 : str
        Of the parent run's ``model.pt``, or of the file.
    state : dict
        The state dict.
    tokenizer : Tokenizer or None
        The parent run's tokenizer (None for a bare weight file).
    gpt : dict or None
        The parent run's GPT config (None for a bare weight file).
    """

    name: str
    source: str
    sha256: str
    state: dict[str, torch.Tensor]
    tokenizer: Any = None
    gpt: dict[str, Any] | None = None

    def check_config(self, gcfg: Any) -> None:
        """:class:`ConfigError` on the first architecture field where the parent run differs.

        The tensors' shapes miss some of them (``n_head`` reshapes nothing), so a parent run's
        saved config is compared too; dropout and the fused kernel change no weight.
        """
        if self.gpt is None:
            return
        for field, value in asdict(gcfg).items():
            if field in ("dropout", "fused") or field not in self.gpt:
                continue
            if self.gpt[field] != value:
                raise ConfigError(
                    f"{self.source} is of another architecture: {field} {self.gpt[field]!r} "
                    f"there, {value!r} here"
                )


def find_parent(init: str | Path, kfw_home: Path, cfg: LMConfig, text: str) -> Parent:
    """The :class:`Parent` behind ``--init``: a run id, a run folder, or a weight file.

    A parent run brings its tokenizer, and the fine-tune corpus is encoded with it (its ids are
    the embedding's rows): the tokenizer kind must be the configured one, and with characters,
    a character of the corpus that the parent never saw is refused in one line (no id means
    no embedding to start from). A bare file (``.pt`` state dict or ``.safetensors``) brings
    weights only: the corpus's own tokenizer is built, and the file's embedding must have its
    vocabulary size; the shapes are checked when the model is built. A run's ``model.pt``
    given as a file is read as its run.
    """
    path = Path(init)
    if path.name == "model.pt" and (path.parent / "run.json").is_file():
        path = path.parent
    if path.is_file():
        return Parent(
            str(path.resolve()), f"weights {path}", file_sha256(path), read_state_dict(path)
        )
    run_dir = find_run(str(init), kfw_home)
    model_pt = run_dir / "model.pt"
    saved = load_checkpoint(model_pt)
    try:
        run_id = json.loads((run_dir / "run.json").read_text())["id"]
    except (OSError, ValueError, KeyError, TypeError):
        run_id = run_dir.name
    source = f"parent run {run_id}"
    try:
        tokenizer = tokenizer_from_dict(saved["tokenizer"])
        state, gpt = dict(saved["model"]), dict(saved["gpt_config"])
    except (KeyError, TypeError, ValueError):
        raise KfwError(f"{model_pt} is not a kfw lm model (model, gpt_config, tokenizer)") from None
    if tokenizer.kind != cfg.tokenizer:
        raise ConfigError(
            f"{source} has a {tokenizer.kind} tokenizer, this run a {cfg.tokenizer} one "
            f"(--tokenizer {tokenizer.kind})"
        )
    if tokenizer.kind == "char":
        unknown = sorted(set(text) - set(tokenizer.chars))
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            raise DataError(
                f"the corpus has {len(unknown)} character(s) the vocabulary of {source} lacks: "
                f"{shown} (a fine-tune encodes with its parent's characters)"
            )
    return Parent(run_id, source, file_sha256(model_pt), state, tokenizer, gpt)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_bytes(model: nn.Module, cfg: LMConfig, tokenizer: Any) -> bytes:
    """``model.pt``: the state dict, the training config, the GPT config and the tokenizer."""
    buf = io.BytesIO()
    torch.save(
        {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "config": asdict(cfg),
            "gpt_config": asdict(gpt_config(cfg, tokenizer.vocab_size)),
            "tokenizer": tokenizer.to_dict(),
        },
        buf,
    )
    return buf.getvalue()


def losses_csv(losses: list[dict[str, float]]) -> bytes:
    lines = ["iter,train_loss,val_loss,lr"]
    lines += [f"{r['iter']},{r['train']!r},{r['val']!r},{r['lr']!r}" for r in losses]
    return ("\n".join(lines) + "\n").encode()


# ---------------------------------------------------------------------------------------------
# kfw lm sample


def find_run(run: str, kfw_home: Path) -> Path:
    """A run folder from a path to it, or from a run id under ``runs/lm-*/``."""
    path = Path(run)
    if (path / "model.pt").is_file():
        return path
    if path.exists():
        raise KfwError(f"{path} is not an lm run folder (no model.pt)")
    matches = (
        sorted((Path(kfw_home) / "runs").glob(f"lm-*/{run}/model.pt")) if "/" not in run else []
    )
    if not matches:
        raise KfwError(
            f"no lm run {run!r} under {Path(kfw_home) / 'runs'} (a run id or a run folder)"
        )
    return matches[0].parent


def load_model(run_dir: Path, device: str = "cpu") -> tuple[nn.Module, Any, dict[str, Any]]:
    """The trained GPT of a run (eval mode), its tokenizer and its ``model.pt`` contents."""

    path = Path(run_dir) / "model.pt"
    saved = load_checkpoint(path)
    try:
        tokenizer = tokenizer_from_dict(saved["tokenizer"])
        gcfg = GPTConfig(**saved["gpt_config"])
        if tokenizer.vocab_size > gcfg.vocab_size:
            raise ValueError(
                f"tokenizer of {tokenizer.vocab_size} tokens, model of {gcfg.vocab_size}"
            )
        model = GPT(gcfg)
        model.load_state_dict(saved["model"])
    except KfwError:
        raise
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise KfwError(
            f"{path} does not match its saved configuration ({str(exc).splitlines()[0]})"
        ) from None
    return model.to(device).eval(), tokenizer, saved


def sample(
    run_dir: Path,
    prompt: str = "",
    tokens: int = 500,
    *,
    temperature: float = 0.8,
    top_k: int | None = 200,
    seed: int = 1337,
    device: str | None = None,
) -> str:
    """``tokens`` new tokens after ``prompt`` from a saved run: prompt + continuation.

    An empty prompt starts from a newline (nanoGPT's start) when the vocabulary has one, else
    from token 0. A prompt with characters outside a character vocabulary raises KfwError.
    """
    if tokens < 0:
        raise ConfigError(f"--tokens must be >= 0, not {tokens}")
    if temperature < 0:
        raise ConfigError(f"--temperature must be >= 0 (0: the likeliest token), not {temperature}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, not {top_k}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer, _ = load_model(run_dir, device)
    if prompt:
        try:
            ids = tokenizer.encode(prompt)
        except KfwError as exc:
            raise KfwError(f"prompt: {exc}") from None
        start, skip = ids, 0
    else:
        try:
            start = tokenizer.encode("\n")
        except KfwError:
            start = [0]
        skip = len(start)
    idx = torch.tensor([start], dtype=torch.long, device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    out = model.generate(
        idx, tokens, temperature=temperature, top_k=top_k, generator=g, vocab=tokenizer.vocab_size
    )
    return tokenizer.decode(out[0, skip:].tolist())
