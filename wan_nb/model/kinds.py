"""What kind of thing a pipeline component is, and whether diffusers will load it.

A folder saved by the installed libraries names classes the published repos never carry
(transformers 5 saves ``T5Tokenizer``, ``TokenizersBackend``, ``CLIPImageProcessorPil``), so
the kind is never guessed from a name's suffix. It comes from the class's place in its
library, read cheaply: transformers' lazy module maps every public class to the submodule
that defines it (``models.t5.tokenization_t5``), and diffusers' ``__init__`` lists every
public name under its subpackage (``_import_structure["schedulers"]``), which is read as
text, never imported. When the library is not installed, the config files present decide.

Loadability follows ``DiffusionPipeline.from_pretrained`` (``load_sub_model``): a component
loads only when its class is a subclass of one of diffusers' ``LOADABLE_CLASSES`` bases
(``ModelMixin``, ``SchedulerMixin``, ``PreTrainedTokenizer(Fast)``, ``PreTrainedModel``,
``FeatureExtractionMixin``, ``ProcessorMixin``, ``ImageProcessingMixin``, ...). transformers'
``Auto*`` factories are none of these, so an ``AutoTokenizer`` entry is refused with "The
component ... cannot be loaded as it does not seem to have any of the loading methods".
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from functools import cache

from wan_nb.libraries import _lazy_table_text

MODEL, TOKENIZER, SCHEDULER = "model", "tokenizer", "scheduler"
IMAGE_PROCESSOR, FEATURE_EXTRACTOR, PROCESSOR, PIPELINE = "image_processor", "feature_extractor", "processor", "pipeline"
FACTORY = "factory"  # transformers' Auto* classes: they pick a class, diffusers cannot load them
KINDS = (MODEL, TOKENIZER, SCHEDULER, IMAGE_PROCESSOR, FEATURE_EXTRACTOR, PROCESSOR, PIPELINE, FACTORY)

# The files each kind's folder holds (what save_pretrained writes; DESIGN "Inputs made by others").
CONFIG_FILES: dict[str, tuple[str, ...]] = {
    MODEL: ("config.json",),
    TOKENIZER: ("tokenizer_config.json",),
    SCHEDULER: ("scheduler_config.json",),
    IMAGE_PROCESSOR: ("preprocessor_config.json",),
    FEATURE_EXTRACTOR: ("preprocessor_config.json",),
    PROCESSOR: ("processor_config.json", "preprocessor_config.json"),
}
# One of these besides tokenizer_config.json: the vocabulary itself.
TOKENIZER_VOCAB_FILES = ("tokenizer.json", "spiece.model", "vocab.json", "vocab.txt", "sentencepiece.bpe.model")

# diffusers' subpackage in its lazy table -> kind.
_DIFFUSERS_SECTIONS = {
    "models": MODEL,
    "schedulers": SCHEDULER,
    "pipelines": PIPELINE,
    "image_processor": IMAGE_PROCESSOR,
    "video_processor": IMAGE_PROCESSOR,
}
# The last part of a transformers submodule -> kind (checked in this order: "processing"
# is a prefix of "image_processing" only after the "image_" part).
_TRANSFORMERS_MODULES = (
    ("tokenization", TOKENIZER),
    ("image_processing", IMAGE_PROCESSOR),
    ("video_processing", IMAGE_PROCESSOR),
    ("feature_extraction", FEATURE_EXTRACTOR),
    ("processing", PROCESSOR),
    ("modeling", MODEL),
)
_SECTION = re.compile(r'_import_structure\[\s*"([^"]+)"\s*\]|^\s*"([a-z_.]+)"\s*:\s*\[', re.M)


@cache
def _diffusers_section(class_name: str) -> str | None:
    text = _lazy_table_text("diffusers")
    at = text.find(f'"{class_name}"')
    if at < 0:
        return None
    sections = [m.group(1) or m.group(2) for m in _SECTION.finditer(text, 0, at)]
    return sections[-1] if sections else None


@cache
def _transformers_module(class_name: str) -> str | None:
    try:
        module = importlib.import_module("transformers")
    except Exception:  # noqa: BLE001 - a broken transformers install; the kind then comes from the folder's files
        return None
    found = (getattr(module, "_class_to_module", None) or {}).get(class_name)
    if found:
        return found
    try:  # an alias the table lacks (T5TokenizerFast is T5Tokenizer in transformers 5)
        cls = getattr(module, class_name, None)
    except Exception:  # noqa: BLE001 - resolving a lazy name imports its submodule; a failure means "unknown here"
        return None
    name = getattr(cls, "__module__", None)
    return name.removeprefix("transformers.") if isinstance(name, str) and name.startswith("transformers.") else None


def library_kind(library: str | None, class_name: str | None) -> str | None:
    """The kind the class has in its installed library, or None when the library does not say."""
    if not library or not class_name:
        return None
    if library == "diffusers":
        return _DIFFUSERS_SECTIONS.get((_diffusers_section(class_name) or "").split(".")[0])
    if library == "transformers":
        module = _transformers_module(class_name)
        if module is None:
            return None
        if module.startswith("models.auto."):
            return FACTORY
        last = module.rsplit(".", 1)[-1]
        return next((kind for prefix, kind in _TRANSFORMERS_MODULES if last.startswith(prefix)), None)
    return None


def folder_kind(files: Iterable[str]) -> str | None:
    """The kind that the config files in a component's folder show (names without folders)."""
    names = {f.replace("\\", "/").rsplit("/", 1)[-1] for f in files}
    if "scheduler_config.json" in names:
        return SCHEDULER
    if "tokenizer_config.json" in names:
        return TOKENIZER
    if "processor_config.json" in names:
        return PROCESSOR
    if "preprocessor_config.json" in names and "config.json" not in names:
        return IMAGE_PROCESSOR
    if "config.json" in names:
        return MODEL
    return None


def _name_kind(class_name: str) -> str:
    # Last resort, when neither the library nor the folder says (the library is missing and
    # the folder is empty or gone): the published naming conventions.
    if class_name.endswith("Scheduler"):
        return SCHEDULER
    if "Tokenizer" in class_name:
        return TOKENIZER
    if class_name.endswith("FeatureExtractor"):
        return FEATURE_EXTRACTOR
    if "Processor" in class_name:
        return IMAGE_PROCESSOR
    return MODEL


def component_kind(library: str | None, class_name: str | None, files: Iterable[str] = ()) -> str | None:
    """What a component is: its library's word first, then its folder's files, then its name."""
    if not class_name:
        return None
    kind = library_kind(library, class_name)
    if kind == FACTORY:
        # What it would build is what the folder holds (AutoTokenizer over tokenizer files).
        return folder_kind(files) or _name_kind(class_name)
    return kind or folder_kind(files) or _name_kind(class_name)


def holds_weights(kind: str | None) -> bool:
    return kind == MODEL


def refusal(library: str | None, class_name: str | None) -> str | None:
    """Why ``DiffusionPipeline.from_pretrained`` would refuse this entry, or None when it loads it."""
    if library_kind(library, class_name) != FACTORY:
        return None
    return (
        f"diffusers cannot load {library}.{class_name} as a pipeline component (it is a factory, not a "
        f"subclass of the classes diffusers loads: `The component ... cannot be loaded`); put the concrete "
        f"class in model_index.json (the `tokenizer_class` of tokenizer_config.json, or the class named "
        f"in the component's config)."
    )
