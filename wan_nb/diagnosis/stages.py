"""Where it went wrong: the stage from frames of every codebase users paste from, then from logs; the component."""

from __future__ import annotations

import re

from wan_nb.diagnosis.patterns import (
    _CLASS_TO_COMPONENT,
    _I,
    _LIBRARY_PATH,
    _WRAPPER_PATH,
    COMPONENTS,
    IMPORT_STATEMENT,
    INPUT_NOT_OPENED,
    _rx,
)
from wan_nb.diagnosis.tracetext import Frame, ParsedError, ParsedText

# --- stage -------------------------------------------------------------------------------------------

STRONG, WEAK = 2, 1

_VAEISH = re.compile(r"vae|autoencoder|/comfy/sd\.py$", _I)
_NOT_VAE = re.compile(r"token|/json/|codecs|encodings/|base64|/email/|/http/|/urllib", _I)
_DECODE_FUNC = re.compile(r"^_?(?:tiled_|spatial_tiled_|temporal_tiled_|single_)?decode(?:_\d+|_tiled\w*|_video|_frames"
                          r"|_latents?|_images?)?$|^decode_latents$"
                          r"|^decode_first_stage$", _I)
_ENCODE_FUNC = re.compile(r"^_?(?:tiled_|spatial_tiled_|temporal_tiled_|single_)?encode(?:_\d+|_tiled\w*|_video|_frames"
                          r"|_images?)?$|^encode_first_stage$"
                          r"|^retrieve_latents$", _I)
_TEXT_FUNC = re.compile(r"^_?(?:encode_prompt|get_t5_prompt_embeds|get_\w*prompt_embeds|encode_text|text_encode"
                        r"|encode_from_tokens\w*|encode_token_weights|get_text_embed\w*|encode_image"
                        # encode_prompts, _encode_prompt_with_t5, encode_text_prompt, get_text_features,
                        # process_prompt: a prompt (or a list of them) going through the text encoder.
                        r"|encode_prompts?_\w+|encode_prompts|encode_text_\w+|get_text_features|process_prompts?)$", _I)
_TEXT_PATH = re.compile(r"/transformers/models/(?:umt5|t5|mt5|clip|xlm_roberta|siglip\w*|llama|qwen\w*|gemma\w*)/"
                        r"|/modules/t5\.py$|/modules/clip\.py$|/text_encoders/|/comfy/sd1_clip\.py$|/clip_model\.py$"
                        # DiffSynth-Studio: its UMT5 (wan_video_text_encoder.py) and the prompters
                        # that tokenize and encode the prompt for it (diffsynth/prompters/).
                        r"|wan_video_text_encoder|/diffsynth/prompters/"
                        r"|text_encoder", _I)
_DENOISE_PATH = re.compile(r"/diffusers/models/transformers/|transformer_wan|/modules/model\.py$|/comfy/ldm/"
                           r"|/diffusers/models/unets/|/diffusers/models/unet_\w+\.py$"  # the UNet denoisers
                           r"|wan_video_dit|/diffsynth/models/\w*dit\w*\.py$|hunyuan_video_packed"
                           r"|/comfy/samplers\.py$|/comfy/sample\.py$|/k_diffusion/|/diffusers/schedulers/"
                           r"|/comfy/model_base\.py$|/wanvideo/modules/model|/models/wan/modules/model", _I)
_DENOISE_FUNC = re.compile(r"^(?:sample|sample_\w+|sampling_function|denoise\w*|\w*_denoise|ksampler|common_ksampler"
                           r"|predict_with_cfg|model_fn_wan_video|model_fn\w*"
                           r"|apply_model|calc_cond\w*|predict_noise\w*|_calc_cond_batch)$", _I)
_WEAK_DENOISE_PATH = re.compile(r"/diffusers/models/attention\w*\.py$|/attention\.py$|flash_attn|sageattention"
                                r"|xformers", _I)
_PRE_FUNC = re.compile(r"^(?:preprocess(?:_\w+)?|_preprocess\w*|prepare_image\w*|prepare_source"
                       r"|prepare_video\w*|load_image|load_video|resize_image\w*|resize_and_crop\w*|center_crop\w*"
                       r"|get_pixel_values|expand2square"
                       # Wan2GP's and the apps' own input preparation (resize_lanczos, get_resampled_video,
                       # calculate_new_dimensions, prepare_video_guide_and_mask, fit_image_into_canvas).
                       r"|resize_(?:image|video|frame|img|lanczos|crop|and_\w+)\w*|get_resampled_video\w*"
                       r"|calculate_new_dimensions|convert_image\w*|prepare_\w*(?:guide|mask|ref|control)\w*"
                       r"|fit_image_into\w*|rescale_image\w*|process_images?_\w+)$", _I)
_POST_PATH = re.compile(r"video_processor\.py$|/export_utils\.py$|/imageio/|/av/|/cv2/|/moviepy/", _I)
_POST_FUNC = re.compile(r"^(?:postprocess\w*|export_to_video|save_video|cache_video|write_frame|numpy_to_pil"
                        r"|pt_to_numpy|tensor2vid|combine_video|save_images|save_animated\w*|mimwrite|mimsave"
                        # the apps' own writers (FramePack's save_bcthw_as_mp4, save_video_frames, ...)
                        r"|save_\w*(?:mp4|video|gif|webm|frames?|images?)\w*|write_video)$", _I)
# An app's own VAE helpers (FramePack's vae_decode, SD.Next's full_vae_decode): the name says it.
_VAE_DECODE_NAME = re.compile(r"^\w*vae_?decode\w*$", _I)
_VAE_ENCODE_NAME = re.compile(r"^\w*vae_?encode\w*$", _I)
_LOAD_FUNC = re.compile(r"^(?:from_pretrained|from_single_file|from_config|load_sub_model|_?load\w*|\w*_load_\w*"
                        r"|\w*_load|safe_open|hf_hub_download|snapshot_download|cached_file\w*|get_checkpoint_shard_files"
                        r"|_get_model_file|_fetch\w*|fetch_\w+|download\w*|_?get_checkpoint_file|get_model\w*|init_model"
                        r"|\w*_loader|build_from_(?:cfg|config)|build_model\w*)$",
                        _I)
# Functions that read weights or configs from disk or the hub.
_DISK_LOAD_FUNC = re.compile(
    r"^(?:from_pretrained|from_single_file|load_sub_model|load_state_dict|_load_state_dict\w*|load_file|safe_open"
    r"|_?load_pretrained_model|load_model_dict_into_meta|_load_from_state_dict|load_torch_file|load_checkpoint\w*"
    r"|load_diffusion_model|load_unet|load_vae|load_clip\w*|load_lora\w*|load_text_encoder\w*|hf_hub_download"
    r"|snapshot_download|cached_files?|get_checkpoint_shard_files|_get_model_file|download|_legacy_load|load_config"
    r"|_dict_from_json_file|_fetch\w*|load_custom_node|load_pipeline\w*)$", _I)
_DEVICE_FUNC = re.compile(r"^(?:to|cuda|xpu|mps|_apply|convert|enable_model_cpu_offload|enable_sequential_cpu_offload"
                          # DiffSynth-Studio's offloading set-up
                          r"|enable_vram_management\w*"
                          r"|enable_group_offload|apply_group_offloading|cpu_offload\w*|dispatch_model"
                          r"|load_models_gpu|model_load|partially_load|load_model_gpu)$", _I)
_CODE_RULES = [
    (re.compile(r"\bvae\.(?:tiled_)?decode\w*\(|decode_latents\(|decode_first_stage\(|\.decode\(\s*latents", _I),
     "vae_decode"),
    (re.compile(r"\bvae\.(?:tiled_)?encode\w*\(|retrieve_latents\(|encode_first_stage\(", _I), "vae_encode"),
    (re.compile(r"\bself\.transformer(?:_2)?\(|\bcurrent_model\(|\bscheduler\.step\(|\bself\.model\(|"
                r"\bsample(?:_\w+)?\(|\bsampler\.|\bpredict_with_cfg\(|\bnoise_pred\w*\b[^=\n]*=", _I), "denoise"),
    # (wan/image2video.py encodes the start image with its CLIP: self.clip.visual([img[:, None, :, :]]).)
    (re.compile(r"\btext_encoder(?:_2)?\(|encode_prompt\(|\bencode_image\(|\bclip\.encode|\bself\.text_encoder\."
                r"|\bclip\.visual\("
                # kijai's WanVideoTextEncode: context = encoder(positive_prompts, device); T5 calls on prompts.
                r"|\b(?:t5|umt5|te|encoder|text_model)\(\s*\[?\s*\w*prompts?\b", _I), "text_encode"),
    # diffusers' pipelines call video_processor.preprocess(image, ...) on the input image and
    # video_processor.postprocess_video(video) on the output: the method says which end it is.
    (re.compile(r"\b(?:video|image)_processor\.preprocess\w*\(|\bpreprocess_(?:image|video)\(|\bload_(?:image|video)\("
                # a transformers image processor called on the input picture (CLIP vision's)
                r"|\bprocessor\(\s*(?:images?|videos?)\s*="
                r"|\bImage\.open\("
                r"|\bcv2\.(?:imread|resize|VideoCapture)\(|\bimages?\w*\s*=\s*[\w.]*common_upscale\("
                r"|\.convert\(\s*['\"]RGBA?['\"]\s*\)|\bTF\.to_tensor\(|\bresize_image\w*\(",
                _I), "preprocess"),
    (re.compile(r"export_to_video\(|postprocess_video\(|video_processor\.postprocess\w*\(|save_video\(|cache_video\(",
                _I), "postprocess"),
    # (The original Wan code builds its parts in WanT2V/WanI2V.__init__:
    # self.text_encoder = T5EncoderModel(...), self.vae = WanVAE(...), self.clip = CLIPModel(...).)
    (re.compile(r"from_pretrained\(|from_single_file\(|load_state_dict\(|torch\.load\(|load_file\(|safe_open\("
                r"|=\s*(?:\w+\.)?(?:T5EncoderModel|UMT5EncoderModel|WanVAE\w*|CLIPModel|WanModel)\(", _I),
     "load"),
    (re.compile(r"\.to\(\s*(?:['\"](?:cuda|mps|xpu|cpu)|device|torch\.device)|\.cuda\(\)|enable_\w*offload\(", _I),
     "to_device"),
]


def frame_stage(frame: Frame) -> tuple[str, int] | None:
    """The stage a frame shows, and how sure (STRONG or WEAK); None if it says nothing."""
    path, name = frame.path, frame.name
    if _TOKENIZE_PATH.search(path) and _TOKENIZE_FUNC.match(name) or _PROMPT_CLEAN_FUNC.match(name):
        # Tokenizing or cleaning the prompt is the first step of encoding it.
        return "text_encode", STRONG
    if _TOKENIZER_FILE.search(path) and _TOKENIZER_BUILD.match(name) or (
            name == "__init__" and _MODEL_TOKENIZER_FILE.search(path)):
        # A tokenizer being built from its files (T5Tokenizer.__init__ -> get_spm_processor,
        # PreTrainedTokenizerBase._from_pretrained, the slow-to-fast conversion): a load.
        return "load", STRONG
    if _BNB_MODULES.search(path) and name in ("to", "cuda", "_quantize", "xpu"):
        # bitsandbytes quantizes its layers as they are moved onto the GPU.
        return "to_device", WEAK
    if _LOADING_FILE.search(path):
        # diffusers' single-file conversion and shard loading, transformers' quantization and
        # empty-weights integrations: code that only runs while a model is loaded.
        return "load", STRONG if _DISK_LOAD_FUNC.match(name) else WEAK
    if _QUANT_LOAD_PATH.search(path):
        # transformers'/diffusers' quantizers check the environment and convert the layers
        # inside from_pretrained; a GGUF file is read by the gguf package: all while loading.
        return "load", WEAK
    if _LORA_LOAD_FUNC.match(name) or (_LORA_PATH.search(path) and not _WRAPPER_PATH.search(path)):
        # A LoRA read and merged into the model (diffusers' loaders, peft's adapter injection,
        # ComfyUI's comfy/lora.py key mapping) is part of setting the model up.
        return "load", STRONG if _LORA_LOAD_FUNC.match(name) else WEAK
    if _PRE_FUNC.match(name) and not _WRAPPER_PATH.search(path):
        return "preprocess", STRONG
    if name == "prepare_latents" and re.search(r"\bimage\b|\bvideo\b", frame.code) and not re.search(
            r"vae|encode|retrieve_latents", frame.code, _I):
        # Image-conditioned pipelines first turn the input image into a tensor here.
        return "preprocess", WEAK
    if "/torch/nn/modules/module.py" in path:
        return ("to_device", WEAK) if name in ("to", "_apply", "convert", "cuda", "xpu") else None
    if "/torchvision/transforms/" in path or re.search(r"/preprocess(?:or|ors|ing)?/", path):
        # torchvision's transforms (resize, to_tensor, normalize) make an input image ready.
        return "preprocess", WEAK
    if path.endswith("/diffusers/image_processor.py") and _IMAGE_PROCESSOR_IN.match(name):
        # VaeImageProcessor's input side: resize, convert, normalise the image before the VAE.
        return "preprocess", STRONG
    if "/PIL/" in path and _PIL_READ.match(name):
        # Pillow opening, converting or resizing a picture: the input is being read.
        return "preprocess", WEAK
    if _PYAV_PATH.search(path):
        # PyAV reads and writes through the same package: its input container and decoders
        # read the input video, its output container and encoders write the result.
        if "input" in path or name in ("decode", "demux", "seek"):
            return "preprocess", STRONG
        if "output" in path or name in ("encode", "mux", "add_stream"):
            return "postprocess", STRONG
    if _VIDEO_READ_PATH.search(path) or (path.endswith("/torchvision/io/video.py") and name.startswith("read")):
        # decord's and torchvision's video readers, face detectors (lip-sync and portrait
        # pipelines find the face in each input frame): the input is being read.
        return "preprocess", WEAK
    if "/PIL/" in path and name in ("save", "_save", "save_all"):
        # Pillow writing a picture (frames saved one by one, a GIF): the output is being written.
        return "postprocess", WEAK
    if path.endswith("/comfy/utils.py") and name in ("common_upscale", "lanczos", "bislerp"):
        # ComfyUI's Wan nodes resize the start image with common_upscale before encoding it.
        return "preprocess", WEAK
    if _WRAPPER_PATH.search(path):
        return None
    if path.endswith("/pipeline_utils.py") and name in ("to", "cuda"):
        return "to_device", STRONG
    if _INIT_WEIGHTS.match(name) and "/modeling_" in path:
        # transformers initialises the weights a checkpoint lacks as the model is built.
        return "load", WEAK
    if path.endswith("/server.py") and name in ("get_object_info", "node_info"):
        # ComfyUI's server lists every node's inputs (INPUT_TYPES) as the UI loads, before any prompt
        # runs. (INPUT_TYPES alone says nothing: execution.py calls it again as each node runs.)
        return "load", WEAK
    if _MODEL_CLASS_FILE.search(path):
        # diffusers' ModelMixin / transformers' PreTrainedModel: their .to() refuses moves of
        # their own (quantized, offloaded); everything else in these files builds or loads a model.
        if name in ("to", "cuda", "xpu", "half", "float"):
            return "to_device", STRONG
        return "load", STRONG if _DISK_LOAD_FUNC.match(name) else WEAK
    if _CONFIG_FILE.search(path) or "/huggingface_hub/" in path:
        # ConfigMixin.register_to_config / PretrainedConfig run as a model is constructed;
        # huggingface_hub only fetches files: both while a pipeline is set up.
        return "load", STRONG if _DISK_LOAD_FUNC.match(name) else WEAK
    if "/sentencepiece/" in path:
        # sentencepiece loads its model file (Load, LoadFromFile) when the tokenizer is made,
        # and encodes the prompt otherwise.
        return ("load", STRONG) if re.match(r"^(?:Load\w*|Init|__init__|_?load\w*)$", name) else ("text_encode", WEAK)
    m = _WRAPPER_NODE_FILE.search(path)
    if m:
        # kijai's wrappers keep each kind of node in its own file (nodes_sampler.py,
        # nodes_model_loading.py): the file says what the node was doing.
        return ("denoise" if m[1] == "sampler" else "load"), WEAK
    if path.endswith("/folder_paths.py"):
        # ComfyUI's model folders are listed while nodes are registered and models picked.
        return "load", WEAK
    if path.endswith("/comfy/model_detection.py"):
        # ComfyUI works out which model a checkpoint holds only while loading it.
        return "load", STRONG
    if path.endswith("/comfy/sd.py") and name == "tokenize":
        # ComfyUI's CLIP.tokenize: the first step of its text encode nodes.
        return "text_encode", STRONG
    if path.endswith("/comfy/model_patcher.py") and _PATCHER_MOVE.match(name):
        # ModelPatcher places (and patches) the weights on the device before a model runs.
        return "to_device", WEAK
    if _DEVICE_FUNC.match(name) and ("model_management" in path or re.search(r"offload|dispatch|vram", name)):
        return "to_device", WEAK if "model_management" in path else STRONG
    if "/mmgp/" in path and _MMGP_READ.match(name):
        # Wan2GP's mmgp reads a checkpoint from disk in these (fast_load_transformers_model,
        # load_model_data): the model is being loaded, not moved.
        return "load", WEAK
    if _MOVE_FUNC.match(name) and not _LIBRARY_PATH.search(path):
        # An app's own helper that moves a model between devices (Wan2GP, the wrappers' offloaders).
        return "to_device", WEAK
    if "/mmgp/" in path or (_LOAD_FUNC.match(name) and _ONTO_DEVICE.search(name)):
        # Offloaders "load" weights onto the GPU during a stage: that is a move, not a load.
        return "to_device", WEAK
    if _DISK_LOAD_FUNC.match(name) or "/safetensors/" in path or path.endswith("/serialization.py"):
        return "load", STRONG
    if _LOAD_FUNC.match(name) and not _DEVICE_FUNC.match(name):
        # Any other "load_*" (ComfyUI's CLIP.load_model moves a loaded model to the GPU):
        # a stage frame above it says more.
        return "load", WEAK
    if _TEXT_FUNC.match(name):
        return "text_encode", STRONG
    if name.startswith("prepare_") and "latents" in name and _CONDITIONED.search(path):
        # Image/video-conditioned pipelines build the VAE's input here, then encode it.
        return "vae_encode", WEAK
    if not _NOT_VAE.search(path):
        vae = _VAEISH.search(path)
        if _DECODE_FUNC.match(name) and (vae or path.endswith("/nodes.py")) or _VAE_DECODE_NAME.match(name):
            return "vae_decode", STRONG
        if _ENCODE_FUNC.match(name) and vae or _VAE_ENCODE_NAME.match(name):
            return "vae_encode", STRONG
        if vae and "/comfy/sd.py" not in path:
            return None  # inside a VAE: only its decode/encode frames say which direction
    if _TEXT_FUNC.match(name):
        return "text_encode", STRONG
    if _POST_FUNC.match(name) or _POST_PATH.search(path):
        return "postprocess", STRONG
    if _TEXT_PATH.search(path) and name != "__init__":
        return "text_encode", STRONG
    if _DENOISE_PATH.search(path) and name != "__init__":
        return "denoise", STRONG
    if _DENOISE_FUNC.match(name) and not path.endswith("/nodes.py") or (
            path.endswith("/nodes.py") and name in ("sample", "common_ksampler")):
        return "denoise", STRONG
    if _WEAK_DENOISE_PATH.search(path):
        return "denoise", WEAK
    if frame.code:
        library = bool(_LIBRARY_PATH.search(path))
        for pattern, stage in _CODE_RULES:
            # Libraries call .to(device) and load helpers everywhere; only the user's or the
            # app's own call of them names the stage.
            if library and stage in ("to_device", "load"):
                continue
            if pattern.search(frame.code):
                return stage, STRONG
        if not library:
            # The app's or the user's line calls a helper whose name says the stage
            # (FramePack's move_model_to_device_with_memory_preservation(...), resize_and_center_crop(...),
            # save_bcthw_as_mp4(...)): weak, a frame inside that helper says more.
            for called in _CALLED.findall(frame.code):
                if called in _NOT_A_MOVE:
                    continue
                for names, stage in _CALLED_NAME_RULES:
                    if names.match(called):
                        return stage, WEAK
    return None




# diffusers' VaeImageProcessor methods that turn the input picture into the VAE's input (its
# output side, pt_to_numpy / numpy_to_pil / postprocess, is the video being written).
_IMAGE_PROCESSOR_IN = re.compile(r"^(?:preprocess|resize|_resize_and_fill|_resize_and_crop|pil_to_numpy|numpy_to_pt"
                                 r"|normalize|convert_to_rgb|convert_to_grayscale|get_default_height_width|blur"
                                 r"|binarize|apply_overlay|get_crop_region)$")
_PYAV_PATH = re.compile(r"(?:^|[/\\])av[/\\](?:container|codec|packet|frame|stream|video)\b")
# (Not facexlib: GFPGAN/CodeFormer restore the generated faces with it, after the run.)
_VIDEO_READ_PATH = re.compile(r"/decord/|/insightface/|/face_alignment/|/mediapipe/|/torchvision/io/video_reader\.py$",
                              _I)
_PIL_READ = re.compile(r"^(?:open|_open_core|convert|resize|thumbnail|crop|load|exif_transpose|preinit|init)$")
_WRAPPER_NODE_FILE = re.compile(r"/custom_nodes/[^/]+/nodes_(sampler|model_loading)\w*\.py$", _I)
_INIT_WEIGHTS = re.compile(r"^(?:_init_weights|init_weights|_initialize_weights|post_init|tie_weights)$")
_MODEL_CLASS_FILE = re.compile(r"/diffusers/models/modeling_utils\.py$|/transformers/modeling_utils\.py$")
_CONFIG_FILE = re.compile(r"/(?:diffusers|transformers)/configuration_utils\.py$")
_PATCHER_MOVE = re.compile(r"^(?:load|partially_load|patch_model\w*|patch_weight_to_device|unpatch_model|detach"
                           r"|model_patches_to|pin_weight_to_device)$")
# mmgp (Wan2GP's offloader) functions that take a file name and read the weights in it.
_MMGP_READ = re.compile(r"^(?:fast_load\w*|load_model_data|_get_model|load_file|_load_file\w*|load_state_dict"
                        r"|_load_\w*_from_file|safetensors2\w*)$")


# transformers' tokenizers and the original Wan code's: called on the prompt, not while loading.
_TOKENIZE_PATH = re.compile(r"/transformers/tokenization_\w+\.py$|/transformers/models/\w+/tokenization_\w+\.py$"
                            r"|/modules/tokenizers\.py$|/tokenizers/", _I)
_TOKENIZER_FILE = re.compile(r"/transformers/tokenization_\w+\.py$|/transformers/models/\w+/tokenization_\w+\.py$"
                             r"|/transformers/convert_slow_tokenizer\.py$")
# (Only a model's own tokenizer class is built in its __init__; tokenization_utils_base.py's
# __init__ frames are BatchEncoding's, made for each tokenized prompt.)
_MODEL_TOKENIZER_FILE = re.compile(r"/transformers/models/\w+/tokenization_\w+\.py$")
_TOKENIZER_BUILD = re.compile(r"^(?:_?from_pretrained|get_spm_processor|load_vocab\w*|_?load\w*"
                              r"|converted|convert_slow_tokenizer|_?get_vocab_from_file)$")
_LORA_LOAD_FUNC = re.compile(r"^(?:load_lora\w*|lora_state_dict|fuse_lora\w*|set_adapters?|load_adapter|inject_adapter\w*"
                             r"|_convert_\w*lora\w*|convert_\w*lora\w*|model_lora_keys\w*)$")
_BNB_MODULES = re.compile(r"/bitsandbytes/nn/modules\.py$")
_LOADING_FILE = re.compile(r"/diffusers/loaders/single_file\w*\.py$|/diffusers/models/model_loading_utils\.py$"
                           r"|/transformers/integrations/(?:bitsandbytes|accelerate|ggml|finegrained_fp8|quanto|torchao"
                           r"|hqq|awq|gptq|fbgemm_fp8|bitnet)\w*\.py$")
_QUANT_LOAD_PATH = re.compile(r"/(?:transformers|diffusers)/quantizers/|/gguf/gguf_reader\.py$|/torchao/quantization/")
_LORA_PATH = re.compile(r"/diffusers/loaders/lora\w*\.py$|/diffusers/loaders/peft\.py$|/diffusers/utils/peft_utils\.py$"
                        r"|/peft/tuners/|/peft/mapping\w*\.py$|/comfy/lora\w*\.py$")
# An app's own "move this model over there" helpers (not torch's .to or a library's internals).
_MOVE_FUNC = re.compile(r"^(?:move_\w*(?:model|module|pipe|weights|device|gpu|cuda|cpu)\w*|\w*_to_(?:device|gpu|cuda)"
                        r"|(?:model|pipe|module)s?_to_\w+|offload_\w+|unload_\w*(?:model|pipe)\w*"
                        # FramePack's memory helpers: a model placed whole on the GPU, its device faked.
                        r"|load_model_as_complete|fake_\w*current_device)$")
_CALLED = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
# (accelerate's set_module_tensor_to_device puts each weight in place while a model is built: a load.)
_NOT_A_MOVE = frozenset({"set_module_tensor_to_device"})
_CALLED_NAME_RULES = ((_VAE_DECODE_NAME, "vae_decode"), (_VAE_ENCODE_NAME, "vae_encode"), (_TEXT_FUNC, "text_encode"),
                      (_PRE_FUNC, "preprocess"), (_POST_FUNC, "postprocess"), (_MOVE_FUNC, "to_device"))
_TOKENIZE_FUNC = re.compile(r"^(?:__call__|_?call_one|encode|encode_plus|_?batch_encode_plus|_?encode_plus|tokenize"
                            r"|_tokenize|convert_tokens_to_ids|pad)$")
# diffusers' Wan pipelines clean the prompt (ftfy, html, whitespace) before the T5 encoder sees it.
_PROMPT_CLEAN_FUNC = re.compile(r"^(?:prompt_clean|basic_clean|whitespace_clean)$")


_CONDITIONED = re.compile(r"i2v|image2video|image_to_video|video2video|v2v|vace|animate|flf2v|ti2v", _I)
_ONTO_DEVICE = re.compile(r"gpu|cuda|device|vram|onload", _I)


_TEXT_TO_VIDEO = re.compile(r"\bt2v\b|t2v-|text2video|text[_ -]to[_ -]video|\bWanPipeline\b", _I)
_CONDITIONED_RUN = re.compile(r"i2v|image2video|imagetovideo|image[_ -]to[_ -]video|vace|v2v|video2video|animate"
                              r"|flf2v|s2v|first_?last|start_image|--image\b|ti2v|WanImageToVideo", _I)


def vae_direction(parsed: ParsedText, frames: list[Frame]) -> str | None:
    """``vae_decode`` when frames are inside a VAE and the run is text-to-video.

    Which way a VAE ran is told by its decode/encode frames; when a paste shows only its
    layers (``vae.py forward``), a text-to-video run settles it: only image- or
    video-conditioned pipelines encode.
    """
    if not any(_VAEISH.search(f.path) for f in frames):
        return None
    context = "\n".join([*parsed.lines[-200:], *(f.path for f in frames)])
    if _TEXT_TO_VIDEO.search(context) and not _CONDITIONED_RUN.search(context):
        return "vae_decode"
    return None


def stage_from_callee(callee: str) -> str | None:
    """The stage a function named in the message belongs to ("WanVideoModelLoader.loadmodel() got ...")."""
    if not callee:
        return None
    name = callee.rsplit(".", 1)[-1]
    owner = callee.rsplit(".", 1)[0] if "." in callee else ""
    if re.search(r"vae|autoencoder", callee, _I):
        if _DECODE_FUNC.match(name):
            return "vae_decode"
        if _ENCODE_FUNC.match(name):
            return "vae_encode"
    if re.fullmatch(r"_?load\w*|_?from_pretrained|from_single_file", name, _I) or "Loader" in owner or (
            name == "__init__" and re.search(r"Model|Transformer|Pipeline|VAE|Encoder|Config", owner)):
        # (A config class built with a key it does not know: PEFT's LoraConfig read from an
        # adapter_config.json written by a newer release, a model config from config.json.)
        return "load"
    if owner and _CAMEL.search(owner):
        # A ComfyUI node's own method (VideoCombine.VALIDATE_INPUTS()): the node says the stage.
        return node_stage(owner.rsplit(".", 1)[-1])
    return None


def stage_from_frames(frames: list[Frame]) -> tuple[str, Frame] | None:
    """Deepest strong frame wins; otherwise the deepest weak one; otherwise a module being imported."""
    weak: tuple[str, Frame] | None = None
    for frame in reversed(frames):
        found = frame_stage(frame)
        if found is None:
            continue
        stage, strength = found
        if strength == STRONG:
            return stage, frame
        if weak is None:
            weak = (stage, frame)
    if weak is None:
        imported = _imported_module(frames)
        if imported is not None:
            return "load", imported
    return weak


def _imported_module(frames: list[Frame]) -> Frame | None:
    """The deepest module top level reached only through imports (an app's memory.py calling
    torch.cuda as main.py imports it): nothing of a run had started.

    Every frame above it must be a module's top level whose line imports, or Python's own import
    machinery; a script run by runpy, a launcher's exec or a lazy import inside a running function
    is not start-up.
    """
    found = None
    for i, frame in enumerate(frames):
        if frame.path.startswith("<frozen importlib"):
            continue
        if frame.name != "<module>" or frame.is_user:
            break
        above = [f for f in frames[:i] if not f.path.startswith("<frozen importlib")]
        if above and IMPORT_STATEMENT.match(above[-1].code):
            found = frame
        elif above:
            break
    return found




_NODE = re.compile(r"(?:Node Type:\**|executing node\s+\d*\s*\(?|class_type['\"]?:)"
                   r"\s*['\"]?(?P<node>[A-Za-z_]\w*)"
                   # ComfyUI's prompt validation lists each failing node as "* VHS_LoadVideo 46:".
                   r"|^\s*\*\s*(?P<listed>[A-Za-z_][\w ()+-]{0,80}?)\s+\d+:\s*$"
                   # Older ComfyUI: "Error occurred when executing smZ CLIPTextEncode:" (a custom
                   # node's class type may hold spaces; it runs up to the colon).
                   r"|Error occurred when executing\s+(?P<spaced>[A-Za-z_][\w ()+-]{0,80}?)\s*:", _I)
# A tqdm bar: "Loading pipeline components...: 60%|██████    | 3/5 [...]". Anchored on "%|" (a
# leading lazy description would make the search quadratic in the line's length).
_PROGRESS = re.compile(r"(?<!\d)\d+%\|[^|\n]*\|\s*(?P<n>\d+)/(?P<total>\d+)")
# SD.Next's bar: "Progress 3.42s/it ██████ 100% 5/5 00:17 00:00 Base"
_SDNEXT_PROGRESS = re.compile(r"^\s*Progress\b[^%\n]{0,200}?(?P<pct>\d+)%\s+(?P<n>\d+)/(?P<total>\d+)")
_PHASES = [
    # "Loading Text Encoder 'ckpts/umt5...'" (Wan2GP), "Loading UMT5EncoderModel" (ai-toolkit),
    # "Loading T5: ..." (musubi-tuner), "Loading VAE ...": a part being read from disk, which the
    # words after "Loading" would otherwise place in the stage that part runs in.
    (re.compile(r"^\W{0,3}(?:\S+\s+-\s+|[\w.:]+:(?:\w+:)*)?\s*loading\s+(?:the\s+)?['\"]?(?:text[ _]?encoders?|t5|umt5|\w*T5\w*"
                r"|clip\w*|vae|image[ _]encoder|tokenizer|lora)\b", _I), "load"),
    # ComfyUI-Manager's start-up scripts run before any node or model.
    (re.compile(r"\bFailed to execute startup-script\b|\bprestartup_script\b", _I), "load"),
    # "Resizing image to 832x480", "Loading input video ...", "Preprocessing the reference images".
    (re.compile(r"\bpre-?process(?:ing)?\b|\bresiz(?:e|ing) (?:the )?(?:input |start |reference |guide )?(?:image|video|frame)s?\b"
                r"|\b(?:loading|reading) (?:the )?(?:input |start |end |reference |guide |control )(?:image|video|frame)s?\b"
                r"(?!\s*(?:encoder|model|processor))"
                # VideoHelperSuite's "Failed to load video: input/x.mp4": a video or image to open is the input.
                r"|" + INPUT_NOT_OPENED, _I), "preprocess"),
    (re.compile(r"\bexport_to_video\b|\bsave_video\b|\bsaving (?:the )?video\b|\bwriting (?:the )?video\b", _I),
     "postprocess"),
    (re.compile(r"\bvae\b[^\n]{0,20}decod|\bdecoding\b|\bdecode\b", _I), "vae_decode"),
    (re.compile(r"\bvae\b[^\n]{0,20}encod|encoding (?:the )?(?:image|video|frames)", _I), "vae_encode"),
    (re.compile(r"text encod|encoding (?:the )?(?:text )?prompts?\b|prompt encod|\bt5\b|\bumt5\b"
                r"|^\s*encode:\s*prompt", _I), "text_encode"),
    (re.compile(r"denois|sampling|\bsampler\b|\bstep \d+ ?/ ?\d+", _I), "denoise"),
    # SD.Next's "Model move: device=cuda ...", "Moving model to cuda": placing weights on the device.
    (re.compile(r"\bmodel move\b|\bmoving (?:the )?(?:model|pipeline|weights|modules?)\b[^\n]{0,30}"
                r"\b(?:to|onto) (?:the )?(?:cuda|gpu|device|mps|xpu)", _I), "to_device"),
    # ("offloading", "unloading", "reloading", "skipping loading" are not a load.)
    (re.compile(r"(?<![A-Za-z])(?<!skipping )loading (?:the )?(?:[A-Za-z]\w* )?(?:model|pipeline|checkpoint|weights"
                r"|transformer|diffusion)"
                # SD.Next's log: "Load model: /models/...", "Load network: ..."
                r"|(?-i:\bLoad (?:model|pipeline|network|module)s?:)"
                r"|\b(?:model|pipeline|checkpoint|weights) loading\b"
                # Models fetched before a run ("during the configuration and download steps",
                # "Downloading shards"); not a URL's /download/ or a sentence's "download it below".
                r"|(?<![/.\w])download(?:ing)? (?:the )?(?:steps?|models?|weights|checkpoints?|shards)\b"
                r"|creating (?:the )?\w*\s?(?:pipeline|model)", _I), "load"),
]


# ComfyUI's node titles in Chinese (its translation and the aki packages): "K采样器(高级)" is
# KSamplerAdvanced, "VAE分块解码" VAEDecodeTiled, "CLIP文本编码器" CLIPTextEncode, "加载器" a loader.
_CJK = re.compile(r"[\u4e00-\u9fff]")
# Only a title's shape: at the line's start, named as a node is ("...器", or VAE's 解码/编码), and
# followed by nothing or by the English message, never by more Chinese: "正在加载自定义节点",
# "我换了采样器也一样", "视频编码失败" and "编码方式是utf-8" are sentences, not nodes.
_CJK_NODE_LINE = re.compile(r"^\s*(?P<node>(?:VAE[\u4e00-\u9fff]{0,4}(?:解码|编码)|[A-Za-z0-9]{0,8}[\u4e00-\u9fff]{0,6}"
                            r"(?:采样器|编码器|加载器|解码器))(?:\([^)\n]{0,8}\))?)(?=\s*$|[A-Za-z])")


def _cjk_node_stage(node: str) -> str | None:
    if "采样" in node:
        return "denoise"
    if "解码" in node:
        return "vae_decode"
    if "编码" in node:
        return "text_encode" if re.search(r"文本|提示|CLIP|T5", node, re.I) else "vae_encode"
    if "加载" in node:
        return "load"
    return None


# Class names shaped like node types that are not ComfyUI nodes: diffusers' pipelines, exceptions
# ("UnicodeEncodeError", "JSONDecodeError"), torch's data loading and distributed samplers.
_NOT_A_NODE = re.compile(r"(?:Pipeline|Mixin|Error|Exception|Warning)$|^(?:DataLoader|(?:Distributed|Random|Sequential"
                         r"|Batch|WeightedRandom|SubsetRandom)Sampler)")
# Nodes that read or resize the input picture or video: ComfyUI's LoadImage, ImageScale,
# ImageCrop; VideoHelperSuite's VHS_LoadVideo; KJNodes' ImageResizeKJ.
_INPUT_NODE = re.compile(r"load(?:image|video|images)|image(?:scale|resize|crop|pad)|resizeimage|upscaleimage", _I)


def node_stage(node: str) -> str | None:
    if _NOT_A_NODE.search(node):
        return None
    if _CJK.search(node):
        return _cjk_node_stage(node)
    n = node.lower().replace(" ", "")
    if _INPUT_NODE.search(n):
        return "preprocess"
    if "loader" in n or n.startswith(("load", "downloadandload")):  # (kijai's DownloadAndLoadX nodes)
        return "load"
    if "decode" in n:
        return "vae_decode"
    if "encode" in n and re.search(r"text|clip|t5|prompt", n):
        return "text_encode"
    if "encode" in n or "tovideo" in n:
        return "vae_encode"
    if "sampler" in n or "sample" in n:
        return "denoise"
    if re.search(r"save|combine|export|createvideo", n):
        return "postprocess"
    return None


# ComfyUI logs "Requested to load <model class>" before each model runs.
_COMFY_LOAD = re.compile(r"Requested to load (\w+)")
_COMFY_KIND = [(re.compile(r"vae", _I), "vae"), (re.compile(r"TE|T5|CLIP|text|umt5", _I), "text"),
               (re.compile(r"wan|unet|model|flux|hunyuan|ltx", _I), "diffusion")]


# A node's name alone on a line (ComfyUI's error popup: "WanVideoSampler" over the message) or
# in front of its message ("WanImageToVideo: HIP error: out of memory").
# (Also "VHS_VideoCombine:" over its list of failed checks, in ComfyUI's validation report.)
_NODE_LINE = re.compile(r"^\s*(?P<node>(?:[A-Z][A-Za-z0-9]*_)?[A-Z][A-Za-z0-9]{3,60})\s*(?::\s+\S.*|:)?$")
_CAMEL = re.compile(r"[a-z0-9][A-Z]|[A-Z]{2,}[a-z]")


def is_node_line(line: str) -> bool:
    """A line holding only a ComfyUI node type of a known kind ("KSamplerAdvanced", the popup's title)."""
    m = _NODE_LINE.match(line) if ":" not in line else None
    return bool(m and _CAMEL.search(m["node"]) and node_stage(m["node"]))


# What ComfyUI's node types are named for: _NODE_TITLE and _PROSE_NODE read names ending so.
_NODE_KINDS = r"(?:Loader|Sampler|Decode|Encode|ToVideo)"
# The popup's node type and its message pasted on one line (an issue title: "HyVideoModelLoader
# module 'comfy...' has no attribute ...", "WanVideoSampler - 'WanModel' object ..."): only
# names shaped like ComfyUI node types, so that a sentence's first word is not read as one.
_NODE_TITLE = re.compile(r"^\s*(?P<node>[A-Z][A-Za-z0-9]{0,60}" + _NODE_KINDS + ")"
                         r"(?:\s*[-:]\s*|\s+)(?=\S)")


def stage_from_text(parsed: ParsedText) -> tuple[str, str] | None:
    """A stage the log names: a ComfyUI node, a phase word, or where progress bars stopped."""
    for line in reversed(parsed.lines):
        m = _NODE.search(line)
        if not m and len(line) < 300 and line[:1] != " " and "%|" not in line:
            m = _NODE_LINE.match(line)
            m = m if m and _CAMEL.search(m["node"]) else _NODE_TITLE.match(line)
            if not m and _CJK.search(line[:40]):
                m = _CJK_NODE_LINE.match(line)
        if m:
            node = m["node"] or m.groupdict().get("spaced") or ""
            listed = m.groupdict().get("listed")
            if listed and ("_" in listed or _CAMEL.search(listed)):
                node = listed  # (a node type, not a markdown bullet: "* Sample 1:")
            stage = node_stage(node)
            if stage:
                return stage, f"node {node}"
    # Lines before the traceback: what the program was doing when it failed.
    before: list[str] = []
    for line in parsed.lines:
        if "Traceback (most recent call last)" in line:
            break
        before.append(line)
    # The VAE runs either before sampling (encoding an image) or after it (decoding): a VAE
    # being readied is placed by what the log shows before it.
    vae_next = False
    for line in reversed(before[-25:]):
        m = _COMFY_LOAD.search(line)
        if m:
            kind = next((k for pattern, k in _COMFY_KIND if pattern.search(m[1])), None)
            if kind == "vae" and not vae_next:
                vae_next = True
                continue
            if kind == "text":
                return ("vae_encode" if vae_next else "text_encode"), f"the log loaded {m[1]} last"
            if kind == "diffusion":
                return ("vae_decode" if vae_next else "denoise"), f"the log loaded {m[1]} last"
            continue
        bars = list(_PROGRESS.finditer(line)) if "%|" in line else []
        sdnext = _SDNEXT_PROGRESS.match(line) if "Progress" in line else None
        if bars or sdnext:
            if bars:
                bar = bars[-1]
                start = bars[-2].end() if len(bars) > 1 else 0
                desc = line[start:bar.start()].lower()
            else:
                bar, desc = sdnext, line[sdnext.end():].lower()
            n, total = int(bar["n"]), int(bar["total"])
            if re.search(r"load|fetch|shard|download", desc):
                return ("load", "a loading progress bar stopped") if n < total and not vae_next else None
            if re.search(r"t5|text|encoder|clip|prompt", desc):
                if n < total:
                    return "text_encode", f"the text encoder's progress bar stopped at {n}/{total}"
                continue  # the prompt was encoded; what ran next is told by an earlier line
            if n < total and not vae_next:
                return "denoise", f"the sampling progress bar stopped at {n}/{total}"
            return "vae_decode", "all sampling steps finished before the error"
        if _FAILED_LOADING.search(line):
            # "An error occurred when loading XPipeline.from_pretrained(...)": the user says which call.
            return "load", "the report says the error came while loading"
        said = _prose_stage(line)
        if said:
            return said
        for pattern, stage in _PHASES:
            if pattern.search(line) and not _HEADER_OR_EXC.search(line):
                if vae_next and stage in ("denoise", "text_encode"):
                    stage = "vae_decode" if stage == "denoise" else "vae_encode"
                return stage, "the log's last phase before the error"
    return None


_HEADER_OR_EXC = re.compile(r"Error|Exception|Traceback", re.I)
# Where the reporter says it failed: "the VAE decode fails", "the sampler errors" (the place
# right before the failure word is read first: "errors during sampling are gone, but now the VAE
# decode fails"), then "the error in the sampler", "an exception at the KSampler", "it crashes
# when loading the model" (no comma between the two: "the error at the end, when the sampler ...").
_PLACE = (r"(?P<where>k?sampler|sampling|vae\s*decod\w*|vae\s*encod\w*|decoding|text\s*encod\w*|model loading"
          r"|loading (?:the )?(?:model|checkpoint)s?)\b")
_PROSE_PLACE_FAILS = re.compile(r"\b(?:the\s+)?" + _PLACE + r"\s+(?:step\s+|stage\s+|node\s+)?(?:errors?|fails?|failed"
                                r"|crash(?:es|ed)?|throws)\b", re.I)
_PROSE_WHERE = re.compile(r"\b(?:errors?|exceptions?|fails?|failed|crash(?:es|ed)?)\b(?!\s+messages?)[^.,;\n]{0,30}?\s"
                          r"(?:in|during|when|while|at|hits?|hitting|reach(?:es|ed|ing)?)\s+(?:the\s+)?" + _PLACE, re.I)
_PROSE_STAGE = (("sampl", "denoise"), ("decod", "vae_decode"), ("text", "text_encode"), ("encod", "vae_encode"),
                ("load", "load"))
# A ComfyUI node type in a sentence about the failure: CamelCase and named for what it does
# ("Getting error HyVideoTextImageEncode - ...", "the WanVideoModelLoaderMultiGPU node"), or in
# words as its title shows ("the Resize Image Node throws", "Mochi VAE Encoder Loader reports error").
_PROSE_NODE = re.compile(r"\b(?P<node>[A-Z][A-Za-z0-9]*?" + _NODE_KINDS + r"(?:[A-Z][A-Za-z0-9]*)?)\b")
_PROSE_SPACED_NODE = re.compile(r"\b(?P<node>[A-Z][A-Za-z0-9]*(?:\s+(?!(?:A|An|The|I|It)\b)[A-Z][A-Za-z0-9]*){1,5})\s+"
                                r"(?:node\b|reports?\b|throws\b|fails\b|failed\b|errors?\b)")
_FAILURE_WORD = re.compile(r"\b(?:errors?|exceptions?|fails?|failed|crash\w*|throws)\b", re.I)


def _prose_stage(line: str) -> tuple[str, str] | None:
    """The stage a reporter's sentence names: a place that failed, or the node nearest the failure word."""
    # (An exception's own message is not the reporter's sentence: "RuntimeError: error in ...".)
    m = (_PROSE_PLACE_FAILS.search(line) or _PROSE_WHERE.search(line)) if "Error:" not in line else None
    if m:
        word = m["where"].lower()
        return next(stage for key, stage in _PROSE_STAGE if key in word), "the report says where the error came"
    failures = [f.start() for f in _FAILURE_WORD.finditer(line)]
    if not failures and not re.search(r"\bnode\b", line, re.I):
        return None
    named = [(node, stage) for node, stage in ((n["node"], node_stage(n["node"])) for n in
                                               [*_PROSE_NODE.finditer(line), *_PROSE_SPACED_NODE.finditer(line)])
             if stage]
    if not named:
        return None
    # (Several nodes in one sentence: the one nearest the failure word, "CheckpointLoaderSimple works
    # but WanVideoSampler fails".)
    node, stage = min(named, key=lambda item: min((abs(line.find(item[0]) - f) for f in failures), default=0))
    return stage, f"the report names the node {node}"


_FAILED_LOADING = re.compile(r"\b(?:when|while|during)\s+(?:loading|calling)\s+[\w.]*from_(?:pretrained|single_file)\("
                             # "`XPipeline.from_pretrained()` fails when loading the text encoder"
                             r"|from_(?:pretrained|single_file)\(\)`? (?:fails|failed|raises)\b"
                             # "from_single_file: 'AutoencoderKL' object has no attribute ...": the call, then its error
                             r"|^\s*(?:\[v?\d[\w.]*\]:?\s*)?from_(?:pretrained|single_file)(?:\(\))?:\s(?!\d)", re.I | re.M)


_CLASS_WORD = re.compile(r"\b(AutoencoderKL\w*|\w*Transformer3DModel|\w*T5EncoderModel|CLIPVision\w*"
                         r"|\w*T5Tokenizer\w*|\w*Tokenizer(?:Fast)?|\w+Scheduler)\b")


_COMFY_NAME = re.compile(r"\b(unet|vae|clip_vision|clip|ckpt)_name\b")
_COMPONENT_DIR = re.compile(r"[/\\](transformer_2|transformer|text_encoder|image_encoder|image_processor|tokenizer"
                            r"|scheduler|vae)(?=[/\\'\"\s.,)]|$)")
_FROM_PRETRAINED = re.compile(r"\b(\w+)\.from_(?:pretrained|single_file)\(")


def component_from(err: ParsedError, facts: dict, stage: str) -> str | None:
    """Which pipeline component the error is about, where the evidence says so."""
    for key in ("missing_path", "missing_file", "file"):
        value = str(facts.get(key, ""))
        for part in reversed(value.replace("\\", "/").split("/")):
            if part in COMPONENTS:
                return part
    for key in ("missing_class", "object", "callee", "unexpected_keyword", "node"):
        value = str(facts.get(key, ""))
        if value:
            for pattern, component in _CLASS_TO_COMPONENT:
                if pattern.fullmatch(value) or pattern.search(value):
                    if key == "unexpected_keyword" and component != "transformer_2":
                        continue
                    return component
    message = err.message
    m = _COMFY_NAME.search(message)
    if m and m[1] != "ckpt":
        return {"unet": "transformer", "vae": "vae", "clip": "text_encoder", "clip_vision": "image_encoder"}[m[1]]
    m = _CLASS_WORD.search(message)
    if m:
        for pattern, component in _CLASS_TO_COMPONENT:
            if pattern.fullmatch(m[1]):
                return component
    for f in reversed(err.frames):
        m = _FROM_PRETRAINED.search(f.code) if "from_" in f.code else None
        if m and not m[1].endswith("Pipeline"):
            for pattern, component in _CLASS_TO_COMPONENT:
                if pattern.fullmatch(m[1]):
                    return component
    m = _COMPONENT_DIR.search(message)
    if m:
        return m[1]
    for f in reversed(err.frames):
        if "/vae" in f.path.lower() or "autoencoder" in f.path.lower():
            return "vae"
        if "transformer_2" in f.code:
            return "transformer_2"
        if _DENOISE_PATH.search(f.path) and "/schedulers/" not in f.path:
            return "transformer"
        if "/schedulers/" in f.path:
            return "scheduler"
        if "encode_image(" in f.code or "image_encoder(" in f.code or (
                "/transformers/models/clip" in f.path and "vision" in (f.func + f.code).lower()):
            return "image_encoder"
        if _TEXT_PATH.search(f.path):
            return "text_encoder"
        if "tokeniz" in f.path.lower():
            return "tokenizer"
    return {"vae_decode": "vae", "vae_encode": "vae", "text_encode": "text_encoder",
            "denoise": "transformer"}.get(stage)


_STATE_DICT = _rx(r"size mismatch for|Missing key\(s\)|Unexpected key\(s\)|expected shape [^\n]* but got"
                  r"|does not have a parameter or a buffer named"
                  r"|has been incorrectly initialized"
                  r"|keys are missing|(?:missing|unexpected) keys?\b"
                  r"|Trying to set a tensor of shape|does not recognize this architecture|Unrecognized model in")


def is_state_dict_mismatch(message: str) -> bool:
    """A checkpoint whose tensors do not fit the class: a loading-time version mismatch."""
    return bool(_STATE_DICT.search(message))
