"""The build pipeline: fetch, convert, optimize, validate, select, publish; all or nothing."""

from __future__ import annotations

import platform
import shutil
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import onnx

from modelship_runtime import __version__
from modelship_runtime.build.conversion import ConvertedModel, convert_model
from modelship_runtime.build.datasets import Dataset, load_dataset, synthetic_dataset
from modelship_runtime.build.errors import BuildError
from modelship_runtime.build.fetching import FetchedFile, fetch_file, sha256_of
from modelship_runtime.build.manifest import (
    Manifest,
    SourceRecord,
    ValidationRecord,
    VariantRecord,
)
from modelship_runtime.build.optimization import Variant, build_variants, planned_variants
from modelship_runtime.build.progress import Progress
from modelship_runtime.build.publishing import commit_directory, publish
from modelship_runtime.build.selection import select_variant
from modelship_runtime.build.settings import BuildSettings
from modelship_runtime.build.signature import Signature
from modelship_runtime.build.validation import (
    Baseline,
    baseline_of,
    choose_metric,
    evaluate_variant,
)

TOOL_DISTRIBUTIONS = (
    "onnx",
    "onnxruntime",
    "skl2onnx",
    "onnxmltools",
    "onnxconverter-common",
    "tf2onnx",
    "keras",
    "numpy",
)


def tool_versions(framework: str) -> dict[str, str]:
    tools = {"modelship": __version__, "python": platform.python_version()}
    for dist in TOOL_DISTRIBUTIONS:
        try:
            tools[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    name, _, version = framework.partition(" ")
    tools[name] = version
    return tools


def _fetch_dataset(
    uri: str,
    work: Path,
    signature: Signature,
    settings: BuildSettings,
    progress: Progress,
    *,
    role: str,
) -> tuple[Dataset, FetchedFile]:
    fetched = fetch_file(
        uri,
        work / role,
        policy=settings.retry,
        progress=progress,
        copy_local=False,
        name=f"{role}.npz",
    )
    return load_dataset(fetched.path, uri, signature), fetched


def _variant_file(variant: Variant) -> tuple[str, str]:
    assert variant.path is not None
    digest = sha256_of(variant.path)
    return f"{variant.name}-{digest[:12]}.onnx", digest


def run_build(settings: BuildSettings, progress: Progress) -> Manifest:
    """Run every stage in a staging directory in the output; only a finished build is committed."""
    plan = planned_variants(settings.quantization, settings.calibration_data is not None)
    settings.output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=settings.output))
    work = staging / ".work"
    work.mkdir()
    try:
        return _run(settings, progress, plan, staging, work)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run(
    settings: BuildSettings, progress: Progress, plan: list[str], staging: Path, work: Path
) -> Manifest:
    progress.log("build-started", source=settings.source, format=settings.format, variants=plan)
    source = fetch_file(
        settings.source,
        work / "source",
        sha256=settings.sha256,
        policy=settings.retry,
        progress=progress,
        copy_local=False,
    )
    progress.log("fetched", uri=source.uri, sha256=source.sha256, bytes=source.size)

    with progress.stage("convert", total=1) as stage:
        converted = convert_model(
            settings.format,
            source.path,
            signature=settings.signature,
            allow_unsafe=settings.allow_unsafe_formats,
        )
        base = work / "converted.onnx"
        onnx.save(converted.model, str(base))
        stage.advance()
    progress.log("converted", task=converted.task, framework=converted.framework)

    signature = converted.signature
    dataset_digest = None
    if settings.validation_data:
        dataset, fetched = _fetch_dataset(
            settings.validation_data, work, signature, settings, progress, role="validation"
        )
        dataset_digest = fetched.sha256
    else:
        dataset = synthetic_dataset(signature)
    calibration = None
    if settings.calibration_data:
        calibration, _ = _fetch_dataset(
            settings.calibration_data, work, signature, settings, progress, role="calibration"
        )

    metric = choose_metric(converted, settings.validation_metric, dataset)
    baseline = baseline_of(converted.reference, dataset, metric)

    records: list[VariantRecord] = []
    built: dict[str, Variant] = {}
    with progress.stage("optimize", total=len(plan)) as stage:
        for variant in build_variants(
            base, work, plan, level=settings.graph_optimization, calibration=calibration
        ):
            built[variant.name] = variant
            stage.advance()
    with progress.stage("validate", total=len(plan)) as stage:
        for name in plan:
            records.append(_evaluate(built[name], converted, dataset, baseline, settings))
            stage.advance()
    for record in records:
        metrics = record.metrics
        progress.log(
            "variant",
            name=record.name,
            passed=record.passed,
            **({"reason": record.reason} if record.reason else {}),
            **(
                {"accuracyDrop": round(metrics.accuracy_drop, 6), "p50Ms": round(metrics.p50_ms, 4)}
                if metrics
                else {}
            ),
        )

    choice = select_variant(records)
    files: list[str] = []
    for record in records:
        record.selected = record.name == choice.selected
        if not record.selected and record.passed:
            record.reason = choice.reasons.get(record.name)
        variant = built[record.name]
        if record.passed and variant.path is not None:
            name, digest = _variant_file(variant)
            shutil.move(str(variant.path), staging / name)
            record.file, record.sha256, record.size_bytes = (
                name,
                digest,
                (staging / name).stat().st_size,
            )
            files.append(name)

    selected = next(r for r in records if r.selected)
    assert selected.file is not None
    manifest = Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source=SourceRecord(
            uri=settings.source,
            format=settings.format,
            sha256=source.sha256,
            size_bytes=source.size,
        ),
        task=converted.task,
        signature=signature,
        validation=ValidationRecord(
            dataset=settings.validation_data,
            dataset_sha256=dataset_digest,
            metric=metric,
            max_accuracy_drop=settings.max_accuracy_drop,
            samples=dataset.rows,
            reference=converted.reference.description,
            throughput_batch=min(settings.timing.throughput_batch, dataset.rows),
        ),
        variants=records,
        selected=selected.name,
        selected_file=selected.file,
        tools=tool_versions(converted.framework),
    )
    text = manifest.to_json()
    if settings.publish:
        with progress.stage("publish", total=1) as stage:
            publish(settings.publish, staging, files, text, progress)
            stage.advance()
    commit_directory(staging, settings.output, files, text)
    progress.log("build-finished", selected=selected.name, output=str(settings.output))
    return manifest


def _evaluate(
    variant: Variant,
    converted: ConvertedModel,
    dataset: Dataset,
    baseline: Baseline,
    settings: BuildSettings,
) -> VariantRecord:
    record = VariantRecord(
        name=variant.name,
        quantization=variant.quantization,
        graph_optimization=settings.graph_optimization,
        passed=False,
        reason=variant.reason,
    )
    if variant.path is None:
        return record
    try:
        evaluation = evaluate_variant(
            variant.path,
            converted.roles,
            dataset,
            baseline,
            max_drop=settings.max_accuracy_drop,
            level=settings.graph_optimization,
            budget=settings.timing,
        )
    except BuildError as exc:
        record.reason = str(exc)
        return record
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        record.reason = f"failed to run: {first[:300]}"
        return record
    record.metrics, record.passed, record.reason = (
        evaluation.metrics,
        evaluation.passed,
        evaluation.reason,
    )
    return record
