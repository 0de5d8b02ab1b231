"""wan_nb.diagnose on error reports users really posted (tests/data/tracebacks/real/).

Labels come from each thread (the maintainers' answer, the fix that worked), never from
wan_nb. The held-out part (real/heldout.json) is only measured, by benchmarks/diagnose.py;
these tests assert the tuned part report by report, the corpus' shape and split, and that a
diagnosis never suggests what the plan would skip. Rule errors propagate here
(WAN_NB_STRICT_DIAGNOSE=1) instead of turning into "unknown".
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from _cases import read_case

import wan_nb
from wan_nb import diagnose
from wan_nb.vocabulary import CATEGORIES, STAGES

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "tracebacks"
REAL = CORPUS / "real"
REAL_FILES = sorted(REAL.glob("*.txt"))
SPLIT = json.loads((REAL / "heldout.json").read_text(encoding="utf-8"))
HELD_OUT = set(SPLIT["held_out"])
TUNED = [p for p in REAL_FILES if p.stem not in HELD_OUT]

# Tuned reports the rules get wrong, with why; strict xfail: fixing one makes the test fail
# until it leaves this list.
KNOWN_MISSES = {
    "advancedcontrolnet_190_controlnet_no_attribute_device":
        "\"'ControlNet' object has no attribute 'device'\" under a loader's title: an old pack after a ComfyUI update and a bug print it alike (could_also_be names the first)",
    "animatediff_evolved_394_motionmodelpatcher_no_model_keys":
        "the pack's own MotionModelPatcher lacking what a newer ComfyUI gives reads like a bug of the pack; the node applying the model names no stage",
    "easyuse_359_flux_shape_referenced_before_assignment":
        "an UnboundLocalError in a sampler node says nothing of the Flux model the ControlNet path does not support",
    "flatten_4_namespace_no_dont_upcast_attention_title":
        "\"'Namespace' object has no attribute\" names an argparse namespace, no library class: only the thread says ComfyUI's options moved on",
    "forge_1514_torch_no_uint16_commit_title":
        "torch lacking an attribute reads as an old torch; only the title's commit and the thread say Forge's own commit broke it",
    "kjnodes_280_imageresizekjv2_value_not_in_list":
        "'Value not in list' reads as a wrong value in the node; only kijai says the frontend change scrambled saved widgets",
    "res4lyf_66_sample_euler_state_info":
        "an unexpected keyword to the stock sampler reads as code of another release; the pack passed it by its own bug",
    "wan22_28_t2v_ksampler_36_vs_32_channels":
        "36 against 32 latent channels reads as a model given another model's latents; only the thread says a newer ComfyUI fixed it",
    "wan22_38_flash_attn_3_unflatten":
        "the frame line is cut to 'in flash_attention' under [rank5] prefixes: no frame is read",
    "wan2gp_1253_connection_errored_out_pagefile":
        "'Connection errored out' and 'Press any key to continue' with no error line say nothing of the RAM paging",
    "wanvideowrapper_463_clip_vision_file_invalid":
        "'clip vision file is invalid' reads as a damaged or missing file; only the thread says the native loader was the wrong node",
    "comfyui_1855_efficient_ksampler_nonetype_cpu":
        "\"'NoneType' object has no attribute 'cpu'\" in a sampler node: old node packs after a ComfyUI update and a bug print it alike (could_also_be names the first)",
    "comfyui_2427_portable_torch_not_compiled_cuda":
        "'Torch not compiled with CUDA enabled' raised from torch's own frames only: start-up and a .to('cuda') print it alike, only the prose says ComfyUI would not open",
    "comfyui_4759_torch_not_compiled_cuda_after_update_title":
        "a title, 'Torch not compiled with CUDA enabled': nothing says it came at start-up",
    "comfyui_9318_ksampler_48_vs_16_wan22_vae_title":
        "48 against 16 at dimension 1 reads as sizes that disagree; only the thread says the Wan 2.2 VAE's latents met a Wan 2.1 model (could_also_be names a wrong input)",
    "comfyuinunchaku_5_no_module_nunchaku_c_pypi":
        "'No module named nunchaku._C': another package of the same name installed from PyPI reads as a release without its compiled part",
    "comfyuinunchaku_643_101_not_compatible_version_list":
        "the node pack's own version check refusing a release it should accept reads as the versions out of step; only the fix in the pack tells it apart",
    "fpstudio_141_f1_lora_list_index_out_of_range":
        "'Error loading LoRA ...: list index out of range' says nothing of the LoRA being made for another model",
    "fpstudio_272_torch_not_compiled_cuda_cpu_wheel":
        "the paste starts at the app module's top level, so nothing shows that module being imported at start-up",
    "framepack_392_dies_loading_checkpoint_shards_ram":
        "the process dies silently while loading shards; the notices before it ('Xformers is not installed!') read as a missing package",
    "kritaai_1452_etn_loadimagebase64_python39":
        "Krita's 'server is missing one or more custom node' says nothing of the old Python that made the tooling nodes fail",
    "kritaai_1478_missing_custom_node_v129_regression":
        "the same message from a plugin regression; no stage word in it",
    "kritaai_1842_referencelatent_node_missing_title":
        "'node ReferenceLatent does not exist' reads the same for a node pack not installed and a ComfyUI too old for a core node",
    "layerstyle_399_florence2_nonetype_not_callable_title":
        "\"'NoneType' object is not callable\" says nothing of the Florence2 model files not downloaded",
    "liveportrait_8_mesh_core_cython_not_built":
        "a name missing from a package's own folder (unknown location) reads as code of another release; only the thread says the Cython part was never built",
    "opensora_251_no_module_shardformer":
        "a package's own submodule missing (no __init__.py, so not installed) reads as a release without it",
    "opensora_31_dit_state_dict_missing_keys_old_sample":
        "missing keys in a state dict read as code and checkpoint of other releases; only the maintainer says the repo's own sample script was outdated",
    "opensoraplan_382_no_module_taming_download":
        "a wrong relative import inside the package reads as a module missing from its release",
    "pyramidflow_87_meta_tensor_sequential_offload_title":
        "'Cannot copy out of meta tensor' reads as a device mismatch; the package's own offloading bug prints it (could_also_be names it)",
    "sageattention_173_sm89_kernel_not_available_5080_stale_build":
        "the kernel's message is only in the assert's source line, which the rules read only when no message line is pasted",
    "sageattention_6_cogvideox_fp32_qk_o_referenced_before_assignment":
        "\"local variable 'o' referenced before assignment\" says nothing of the fp32 inputs SageAttention 1.0.0 refused",
    "spargeattn_3_a800_unspecified_launch_failure_fp8_ampere_title":
        "'unspecified launch failure' reads as a GPU fault; only the thread says the FP8 kernel ran on an Ampere card",
    "unianimate_46_registry_keyerror_quoted_flat":
        "the traceback pasted flat on one line: no frame is read",
    "wan2gp_792_vace_circular_reference_finetune_json":
        "'Circular Reference in Model modules dependencies' says nothing of an old finetune definition left over",
    "wan2gp_808_fantasy_talking_sliding_window_1_index_error_title":
        "'list index out of range' says nothing of the saved sliding-window setting of 1",
    "wanvideowrapper_43_target_shape_i2v_with_t2v_model_title":
        "a bare 'target_shape' (a KeyError's key) says nothing of the text-to-video model in an image-to-video run",
    "wanvideowrapper_756_gguf_wan_model_needs_gguf_vace":
        "the loader is named only inside 【】 brackets, which the node rules do not read",
    "wanvideowrapper_757_vace_model_select_needs_gguf_title":
        "'when I try to load the model' has no failure word, so the sentence is not read as where it failed",
    "wanvideowrapper_796_gguf_main_model_vace_must_be_gguf_title":
        "a title with the wrapper's own check: no stage word in it",
    "wasnodes_342_ffmpeg_bin_path_not_set":
        "WAS's notice that ffmpeg_bin_path is not set names a setting, not ffmpeg missing",
    "xattention_4_hunyuan_llama_device_side_assert_text_encoder":
        "a device-side assert reads as a GPU fault; only the maintainer says the evaluation code loaded the text encoder wrongly",
    "advcontrolnet_41_controlnet_no_load_device_title":
        "a title without a frame, \"'ControlNet' object has no attribute 'load_device'\": a pack newer than ComfyUI and the pack's own bug print it alike (could_also_be names the first)",
    "aitoolkit_85_loraplus_unet_lr_ratio_old_kohya_title":
        "a stale copy of kohya's sd-scripts picked up instead of the submodule; the missing attribute reads like any bug of the toolkit",
    "cgem156_2_attentioncouple_sum_cuda_float8":
        "'sum_cuda' not implemented for 'Float8_e4m3fn' reads as fp8 on a device without it; the thread found the pack did not handle fp8 models",
    "cogvideo_204_v100_no_bf16_oom_56gib":
        "an out-of-memory error whose cause (bfloat16 on a V100) the text never names",
    "cogvideo_70_sat_modules_not_found_swissarmy":
        "imports of sat.* pasted as code with 'but not find corresponding files': no error line names the missing package",
    "controlnetaux_440_acn_no_latent_format":
        "\"'ControlNet' object has no attribute 'latent_format'\" inside a node: an old ComfyUI and a bug of the pack print it alike (could_also_be names the first)",
    "diffusers_pr14014_flux_kohya_te_lora_transformers5_indexerror":
        "an IndexError in diffusers' PEFT helper; only the PR ties it to transformers 5 renaming CLIP's modules",
    "diffusionpipe_378_no_module_hyvideo_submodules":
        "'No module named hyvideo' reads as a package to install; only the thread says the repository's submodule was not cloned",
    "forge_1010_flux_unet_key_prefix_title":
        "\"'NoneType' object has no attribute 'unet_key_prefix'\" says nothing of the VAE and text encoders not selected",
    "forge_2782_flux_nf4_nonetype_not_iterable":
        "a bare \"'NoneType' object is not iterable\" says nothing of the separate VAE and text encoders missing",
    "framepack_105_sage_attention_not_installed_title":
        "'Sage Attention is not installed' names no stage; only the thread says it was printed at start-up",
    "hunyuan3dwrapper_pr112_custom_rasterizer_import_before_torch":
        "a DLL that failed to load reads as a missing or mismatched library; only the PR says the wrapper imported it before torch",
    "ltxvideo_129_nodes_lt_no_ltxvaddguide":
        "a module attribute missing, with no frame: only the thread says it was raised as the node pack was imported",
    "wan2gp_958_no_module_sageattn_import_outside_try":
        "an optional import the app's latest commit moved out of its try block reads as a package not installed",
    "wanvideowrapper_1296_1080_not_divisible_by_16_tensor_size":
        "two token counts that differ say nothing of the 1080 height not divisible by 16 (could_also_be names a wrong input)",
    "wanvideowrapper_743_multitalk_required_input_audio_fork_conflict":
        "'Required input is missing: audio' reads as a workflow wired wrong; only the maintainer says an old fork shadowed the node",
    "animatediff_evolved_176_orig_memory_required_psa":
        "a bare UnboundLocalError inside a node pack: a bug of the pack reads the same; only the maintainer's PSA "
        "says a ComfyUI update had changed what the pack hooks into",
    "lightx2v_pr564_byt5_missing_text_tokens":
        "a PR's prose names the package's own prompt helpers (_process_single_byt5_prompt), no frame or log line: "
        "no rule reads those names as text encoding",
    "surya_469_keyerror_encoder_transformers_456":
        "a bare KeyError in the package's own config code; only the prose ties it to a transformers release, and "
        "a library's own bug reads the same way (transformers_32167)",
    "nunchaku_63_forward_wrapper_no_img_in":
        "a frameless \"'X' object has no attribute 'y'\" of a node pack's own class: the same line a bug of the pack "
        "prints; only the thread tells that an older ComfyUI was the cause",
    "stit_7_mimwrite_image_must_be_numpy":
        "imageio refusing non-array frames reads like a wrong argument to the writer (as in cogvideox_interp_3); "
        "the author's answer was to upgrade imageio",
    "wan2gp_938_vace_sparse_video_image_unbound":
        "an UnboundLocalError in Wan2GP's generate_video on a line that assembles the guide video: only the app's "
        "own variable names (pre_video_guide) say the input was being prepared; no general rule reads them",
    "aitoolkit_460_wan22_local_vae_path_bug":
        "a path the toolkit itself built wrongly reads as a file not there; only the reporter's reading of wan21.py says the toolkit's own branch is the bug",
    "animatediff_415_ksampler_0_outdated_acn":
        "an error report whose message is only \"0\" (a KeyError's key) says nothing of the outdated node pack the thread found",
    "animatediff_evolved_25_loaderv1_index_out_of_range_non_sd15":
        "an IndexError while a motion module is injected into the U-Net says nothing of the checkpoint being no SD1.5 one",
    "animatediff_evolved_282_motion_pe_stretch_settings":
        "a duplicated parameter in the pack's own code reads like a caller of another release (got multiple values); the same-day fix in the pack tells it apart",
    "cogvideo_641_v2v_unexpected_kwarg_num_frames":
        "the repo's demo passes an argument diffusers' pipeline never took: it reads exactly like a diffusers of another release",
    "diffsynth_1668_partial_download_cannot_detect_model_type":
        'the download warning that explains it is a log line before the error; the error itself (an unknown model hash) reads as a newer model',
    "diffusers_5919_linear_no_set_lora_layer":
        'the example script calls a method the class lacks: the same line an older diffusers prints',
    "diffusers_9314_flux_single_file_local_config_json":
        'a single-file load that should not need the hub config reads as a missing config file; the fix was in diffusers',
    "diffusers_9895_flux_offload_regression_revert":
        'a regression in offloading prints the two-device error any misplaced tensor does; only the revert tells it apart',
    "diffusionpipe_126_flash_attn_assert_torch26":
        'a bare `assert FLASH_ATTN_2_AVAILABLE` reads as flash-attn not installed or unusable; only the thread shows the wheel did not match torch 2.6',
    "gguf_163_ltxv_cliptextencode_model_size_none":
        "'NoneType' object has no attribute 'model_size' names no ComfyUI class; only the thread ties it to a ComfyUI update",
    "gguf_230_unexpected_architecture_pig":
        "the GGUF architecture string of another tool's file; no rule tells a foreign string from a newer model's",
    "imageio_842_v3_jpeg_hw1_shape_keyerror":
        "KeyError: 'JPEG' inside Pillow's save says nothing about the array's shape that caused it",
    "latentsync_229_two_faces_face_not_detected":
        '"Face not detected" is a wrong input in other threads (latentsync_44); here the maintainer answers that newer code handles two faces',
    "mochi_38_unexpected_kwarg_tiled_decode":
        "the repo's own call of its own decoder with a removed argument reads like code for another release",
    "musubi_337_latent_not_divisible_patch_size_height":
        'the stage is in the cut log (sample_image_inference), after the error line; the error line itself names no stage',
    "peft_2246_add_adapter_low_cpu_mem_usage":
        "an unexpected keyword inside PEFT's own call chain reads like an older transformers/diffusers",
    "vhs_23_loadvideo_failed_convert_int_select_every_nth":
        'a saved node whose widget values shifted after a pack update reads like a wrong value typed into the node',
    "vhs_275_return_type_mismatch_latent_image":
        "ComfyUI's validation of linked types reads like a wrongly wired workflow; only the thread ties it to ComfyUI's execution changes",
    "wan2gp_154_gradio_server_renamed_wgp":
        'python cannot open a script the launcher still names: reads as a file not there; only the thread says the app renamed it',
    "wan2gp_660_mask_creator_no_module_wan_utils_utils":
        "the app's own module (wan.utils.utils) moved in its own update (a bug of that update, the thread says): it reads like a package of another release",
    "wanvideowrapper_1605_keyerror_ffn_bias_old_wrapper":
        'a bare KeyError on a tensor name, no frame: an old loader and a file of another model read the same',
    "wanvideowrapper_30_callback_latent_cuda_cpu":
        "a device mix in the wrapper's own preview callback prints the two-device error; only the fix in the wrapper tells it apart",
    "animatediff_evolved_430_samplercustom_0_acn_outdated":
        '"Error occurred when executing SamplerCustom: 0" carries no message: only the thread names the outdated node pack',
    "comfyui_11653_ltx2_tensor_size_smznodes":
        "a size mismatch inside the sampler reads like a bad input; only the thread blames another node pack's patch",
    "comfyui_2355_cannot_read_undefined_reading_1_title":
        'a JavaScript TypeError of the front end, no Python at all; only the thread ties it to an old ComfyUI',
    "diffusers_8320_single_file_autoencoderkl_name":
        "diffusers' own object lacking an attribute reads like another release of it; the fix was in diffusers",
    "diffusers_pr12336_wan_vae_tiling_12_channels":
        'the stage is in prose ("fail to inference vae with vae.enable_tiling()"), which no rule reads as an encode',
    "forge_918_update_device_mismatch_model_failed_load":
        'a regression of the app prints the two-device error any misplaced tensor does',
    "gguf_41_q4_0_split_block_dims_unpack":
        'a dequantisation helper of the node pack names no stage (its forward runs in the sampler)',
    "interpolateeverything_1_old_preprocessors_pack_missing":
        "another node pack's __init__.py not found reads as a file not there; the thread calls the pack a dependency",
    "latentsync_116_no_module_latentsync_wrong_dir":
        "the app's own package not importable (run from another folder) reads like a package to install",
    "mmaudio_10_missing_node_types_deps":
        "ComfyUI's missing-node-types popup says node classes are unavailable; that their imports failed for lack of packages is only in the start-up log, not pasted",
    "multigpu_118_expected_cuda_device_got_cpu":
        '"Expected a cuda device, but got: cpu" names no library; only the thread ties it to a ComfyUI change',
    "pyav_1580_datastream_no_decode":
        "PyAV's own object lacking a method reads like another PyAV release; the reporter's loop was at fault",
    "pyav_735_h264_unknown_codec_decord_conflict":
        "an encoder PyAV does not find reads as a build without it; only decord's thread says its bundled FFmpeg was loaded first",
    "vhs_34_loadvideo_pil_fallback_unstable_main":
        'a video the node cannot open reads like a bad input; only the maintainer says the branch was broken',
    "wan2gp_1753_no_module_shared_v1150":
        "the app's own package not importable (a regression of the app): read as the app's files missing; the thread counts the app's bug",
    "wan2gp_676_no_module_shared_utils_after_upgrade":
        "the app's own package not importable after an upgrade (its shared folder lacked an __init__.py): read as the app's files missing; the thread counts the app's bug",
    "wanvideowrapper_111_empty_image_embeds_t2v_title":
        '"Empty image embeds must be provided for T2V" names no argument a rule reads; only the maintainer says the model was the wrong one',
    "wanvideowrapper_431_no_attribute_vace_patch_embedding_title":
        'a title naming a missing attribute, no object: only the reporter says a node was not connected',
    "advcontrolnet_238_same_device_mat2_update_acn":
        'a node pack out of step with ComfyUI prints the two-device error any misplaced tensor does',
    "aitoolkit_301_diffuserss_model_id_typo":
        "a repo id the toolkit itself misspelled reads as a model not found; only the reporter traced it to the toolkit's code",
    "cogvideo_407_i2v_with_t2v_model_16_vs_8":
        'a concatenation of 16 and 8 channels reads like any size mismatch; only the maintainer says a T2V model was used for I2V',
    "comfyui_9211_gguf_qwen_image_architecture_update_gguf":
        'the GGUF architecture string of a model newer than the node pack; a foreign string reads the same (gguf_230)',
    "controlnetaux_432_input_combo_resolution_typo":
        "a typo in the pack's own call of its own helper reads like code for another release",
    "controlnetaux_451_utils_module_long_paths":
        "the pack's own module missing (files left out by Windows path lengths) reads like a package of another release",
    "diffusers_125_accelerate_launch_nonetype_lower":
        "a None where accelerate's launcher reads its config says nothing of the config file that was never written",
    "diffusers_13279_autoencoderrae_old_transformers":
        "'NoneType' object has no attribute 'to' inside transformers' weight init names no version",
    "diffusers_13833_cliptextmodel_no_text_model_transformers56":
        'the stage is not shown: a bare AttributeError on a transformers class',
    "forge_1133_no_clip_state_dict_update_fixed":
        'Forge\'s "You do not have CLIP state dict!" means a checkpoint without a text encoder in other threads (forge_1471); here an update broke it',
    "forge_2919_bnb_nf4_function_not_found_cu128":
        "a function missing from bitsandbytes' binary reads like a build without GPU support; only the thread says a newer bitsandbytes had it",
    "framepack_722_sm120_no_kernel_image_5080":
        "the stage is only in prose quoting the app's line (hunyuan.py: llama_attention_length = ...)",
    "impact_809_subpack_nodes_install_py_not_run":
        "the pack's own module missing reads like a package of another release; only the maintainer says install.py was not run",
    "invokeai_5009_configure_expected_string_model_gone":
        '"expected string or bytes-like object" in the installer says nothing of the model no longer offered',
    "opensoraplan_540_t2v_script_with_i2v_model_title":
        'the model class lacking an attribute reads like another release; only the maintainer says the wrong script was used',
    "peft_1914_cannot_import_loraconfig_typo":
        'a misspelled name (Loraconfig) reads like a name an older peft lacks; the text cannot tell without importing peft',
    "transformers_36321_get_text_config_node_449":
        'a frameless "object has no attribute" on a config of unknown origin; only the prose ties it to a transformers upgrade',
    "wan2gp_1215_cuda_oom_after_driver_update":
        'a CUDA out-of-memory error is one; only the thread found that a driver update caused it',
    "wan2gp_2101_minimax_h3_lora_unsupported":
        'Wan2GP\'s "this Lora is for a different model" is a wrong LoRA in other threads (wan2gp_1936); here the app was too old for it',
    "wan2gp_675_pinokio_enoent_mmgp":
        "Pinokio's unexpanded path (ENOENT ...{{input.event[0]}}) says nothing of the requirements not reinstalled",
    "wanvideowrapper_1146_tensors_two_devices_regression":
        'a regression in the wrapper prints the two-device error any misplaced tensor does',
    "wrapper_1366_encode_2_unexpected_pbar":
        "a bug inside the wrapper reads exactly like an installed library that is too old (the paste stops before "
        "the frame that would show that caller and callee are the same package's)",
}


# Rule errors fail these tests instead of becoming an "unknown" diagnosis (what users get).
pytestmark = pytest.mark.usefixtures("strict_diagnose")


# --- the corpus itself ------------------------------------------------------------------------

_SOURCE = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+) (?P<kind>issue|pull request) #(?P<n>\d+)$")


def test_real_corpus_is_labelled_and_sourced():
    assert len(REAL_FILES) >= 120
    for path in REAL_FILES:
        header, text = read_case(path)
        assert header["category"] in CATEGORIES and header["stage"] in STAGES, path.name
        m = _SOURCE.match(header["source"])
        assert m, (path.name, header["source"])
        kind = "issues" if m["kind"] == "issue" else "pull"
        assert header["link"] == f"https://github.com/{m['repo']}/{kind}/{m['n']}", path.name
        assert len(header["note"]) > 20, path.name
        assert header.get("category_in_text", "yes") in ("yes", "no")
        assert header.get("stage_in_text", "yes") in ("yes", "no")
        assert text.strip(), path.name


def test_real_corpus_covers_categories_stages_and_paste_shapes():
    headers = [read_case(p)[0] for p in REAL_FILES]
    texts = {p.stem: read_case(p)[1] for p in REAL_FILES}
    assert set(Counter(h["category"] for h in headers)) == set(CATEGORIES)
    assert set(Counter(h["stage"] for h in headers)) == set(STAGES)
    everything = "\n".join(texts.values())
    for shape in ("!!! Exception during processing !!!", "Error occurred when executing", "ComfyUI Error Report",
                  "Cell In[", "<ipython-input-", "---> ", "During handling of the above exception", "[rank7]:",
                  "C:\\", "HIP out of memory", "MPS backend out of memory", "xpu", "Killed", "%|",
                  "Traceback (most recent call last)", "OutOfMemoryError", "(os error 1455)", "comfyui-rocm  | "):
        assert shape in everything, shape
    # Timestamps, SD.Next's log and progress lines, pastes cut before the error line, a last line only.
    assert sum(bool(re.search(r"^\[?\d{4}-\d\d-\d\d[ T]\d", t, re.M)) for t in texts.values()) >= 5
    assert sum(bool(re.search(r"^\d\d:\d\d:\d\d-\d+ (?:INFO|DEBUG|ERROR)", t, re.M)) for t in texts.values()) >= 2
    assert sum(h.get("category_in_text") == "no" for h in headers) >= 5
    assert sum(len([line for line in t.split("\n") if line.strip()]) == 1 for t in texts.values()) >= 5


def _split_module():
    spec = importlib.util.spec_from_file_location("make_real_split", DATA / "make_real_split.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_held_out_split_is_stable_and_by_thread():
    module = _split_module()
    threads: dict[str, list[str]] = {}
    for path in REAL_FILES:
        threads.setdefault(module.thread_of(path), []).append(path.stem)
    frozen_held, frozen_tuned = set(SPLIT["frozen_held_out_threads"]), set(SPLIT["frozen_tuned_threads"])
    # The first split is frozen: 120 threads, 36 held out, none dropped or moved since.
    assert len(frozen_held) == 36 and len(frozen_held | frozen_tuned) == 120 and not frozen_held & frozen_tuned
    assert frozen_held | frozen_tuned <= set(threads)
    import random

    first = sorted(frozen_held | frozen_tuned)
    random.Random(SPLIT["seed"]).shuffle(first)
    assert set(first[:36]) == frozen_held
    # Every later thread is placed by the seeded hash of its key alone.
    sides = module.assign(sorted(threads), frozen_held, frozen_tuned)
    held = sorted(t for t, side in sides.items() if side == "held_out")
    assert held == SPLIT["held_out_threads"]
    assert sorted(s for t in held for s in threads[t]) == SPLIT["held_out"]
    assert all(t in frozen_held or t in frozen_tuned or sides[t] == module.side_of(t) for t in threads)
    # A thread is on one side only, and the held-out part is about 30 % of the threads.
    assert all(set(stems) <= HELD_OUT or not set(stems) & HELD_OUT for stems in threads.values())
    assert 0.2 <= len(held) / len(threads) <= 0.4


def test_split_rule_for_new_threads_depends_on_the_key_alone():
    module = _split_module()
    keys = [f"someone/repo{i} issue #{i}" for i in range(2000)]
    sides = [module.side_of(k) for k in keys]
    assert sides == [module.side_of(k) for k in reversed(keys)][::-1]
    assert 0.27 <= sides.count("held_out") / len(sides) <= 0.33


# --- the tuned part, report by report --------------------------------------------------------------


def _case_params():
    for path in TUNED:
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[path.stem])] if path.stem in KNOWN_MISSES else []
        yield pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", list(_case_params()))
def test_tuned_report(path):
    header, text = read_case(path)
    d = diagnose(text)
    if header.get("category_in_text") == "no":
        # Cut before the error line: naming the thread's category or saying unknown, never another.
        assert d.category in (header["category"], "unknown"), d.to_text()
    else:
        assert d.category == header["category"], d.to_text()
    if header["stage"] != "unknown" and header.get("stage_in_text", "yes") != "no":
        assert d.stage == header["stage"], d.to_text()


# Ways the same report reaches wan_nb: inside a quote, a docker log, a code fence, with chatter
# around it, with colours or Windows line ends. None of them changes what the report says.
_WRAPPINGS = {
    "quoted": lambda t: "\n".join("> " + line for line in t.split("\n")),
    "docker": lambda t: "\n".join("comfyui-1  | " + line for line in t.split("\n")),
    "fenced": lambda t: "```\n" + t + "\n```",
    "chatter": lambda t: "Hi, I get this when I run it:\n\n" + t + "\n\nAny help appreciated, thanks!\n",
    "ansi_crlf": lambda t: "\r\n".join("\x1b[31m" + line + "\x1b[0m" if line.strip() else line for line in t.split("\n")),
}


@pytest.mark.parametrize("wrapping", sorted(_WRAPPINGS))
def test_tuned_reports_read_the_same_however_they_are_wrapped(wrapping):
    changed = []
    for path in TUNED:
        text = read_case(path)[1]
        plain, wrapped = diagnose(text), diagnose(_WRAPPINGS[wrapping](text))
        if (plain.category, plain.stage) != (wrapped.category, wrapped.stage):
            changed.append(f"{path.stem}: {plain.category}/{plain.stage} -> {wrapped.category}/{wrapped.stage}")
    assert not changed, changed


def test_known_misses_are_tuned_reports():
    assert set(KNOWN_MISSES) <= {p.stem for p in TUNED}


# --- bare lines the libraries print, read for what they mean ----------------------------------------

@pytest.mark.parametrize(("text", "category"), [
    # an array where a tensor or image goes is a wrong input, not another library release
    ("AttributeError: 'numpy.ndarray' object has no attribute 'to'", "invalid_input"),
    # ... also when the paste dropped the type (a ComfyUI popup, an issue title): CPython's wording names it
    ("'numpy.ndarray' object has no attribute 'to'", "invalid_input"),
    # cudaErrorNotSupported (ComfyUI's cudaMallocAsync on older cards): unsupported, not a fault
    ("RuntimeError: CUDA error: operation not supported", "accelerator_unavailable"),
    # diffusers exports its helpers from diffusers.utils only; an old diffusers lacks them there
    ("ImportError: cannot import name 'export_to_video' from 'diffusers'", "user_code"),
    ("ImportError: cannot import name 'export_to_video' from 'diffusers.utils'", "version_mismatch"),
    # ComfyUI's own modules are no pip package: a node pack newer than ComfyUI
    ("ModuleNotFoundError: No module named 'comfy.ldm.wan'", "version_mismatch"),
    ("ModuleNotFoundError: No module named 'node_helpers'", "version_mismatch"),
    ("AssertionError: diffusers>=0.25.0 requirement not satisfied. Please install correct diffusers version.",
     "version_mismatch"),
    # a pasted NameError without its code: a cell's or a package's, the text does not say
    ("NameError: name 'item' is not defined", "unknown"),
])
def test_bare_lines(text, category):
    assert diagnose(text).category == category


def test_a_live_name_error_without_traceback_stays_the_users():
    assert diagnose(NameError("name 'pipe' is not defined")).category == "user_code"


def test_the_safetensors_fallback_line_is_a_checkpoint_of_another_release():
    d = diagnose("An error occurred while trying to fetch org/model: org/model does not appear to have a file named "
                 "diffusion_pytorch_model.safetensors.")
    assert (d.category, d.stage) == ("version_mismatch", "load")


# --- stages and categories from bare lines (library and app wording, not corpus files) -----------------

def _tb(*frames: tuple[str, str, str], last: str) -> str:
    """A CPython traceback: (path, function, code line) from outermost to innermost, then the error line."""
    lines = ["Traceback (most recent call last):"]
    for path, func, code in frames:
        lines += [f'  File "{path}", line 10, in {func}', f"    {code}"]
    return "\n".join([*lines, last])


_SITE = "/usr/lib/python3.11/site-packages"
_COMFY = "/home/u/ComfyUI"


@pytest.mark.parametrize(("text", "category", "stage"), [
    # a model's first layer takes 36 latent channels (image-to-video) and got 16 (text-to-video latents)
    ("RuntimeError: Given groups=1, weight of size [5120, 36, 1, 2, 2], expected input[1, 16, 21, 90, 160] to have "
     "36 channels, but got 16 channels instead", "invalid_input", None),
    # ... while 4 against 3 is still an RGBA picture met an RGB layer
    ("RuntimeError: Given groups=1, weight of size [64, 3, 7, 7], expected input[1, 4, 512, 512] to have 3 channels, "
     "but got 4 channels instead", "invalid_input", None),
    # ComfyUI's popup: the node and the message; the loader before it gave nothing
    ("CLIPVisionEncode\n'NoneType' object has no attribute 'encode_image'", "component_missing", None),
    # PyTorch's device mismatch, cut after its third word
    ("RuntimeError: Expected all tensors", "device_mismatch", None),
    # diffusers' building blocks are the installed library's classes
    ("AttributeError: 'BasicTransformerBlock' object has no attribute 'norm_type'", "version_mismatch", None),
])
def test_categories_from_bare_lines(text, category, stage):
    d = diagnose(text)
    assert d.category == category, d.to_text()
    if stage:
        assert d.stage == stage, d.to_text()


@pytest.mark.parametrize(("text", "category"), [
    # torch 2.6's weights-only default refusing a checkpoint pickled with other objects
    ("_pickle.UnpicklingError: Weights only load failed. This file can still be loaded, to do so you have two "
     "options, do those steps only if you trust the source of the checkpoint.", "version_mismatch"),
    ("WeightsUnpickler error: Unsupported global: GLOBAL numpy.core.multiarray.scalar", "version_mismatch"),
    # torchvision's compiled ops built for another torch
    ("RuntimeError: No such operator torchvision::nms", "version_mismatch"),
    ("UserWarning: Couldn't load custom C++ ops. This can happen if your PyTorch and torchvision versions are "
     "incompatible", "version_mismatch"),
    ("WARNING[XFORMERS]: xFormers can't load C++/CUDA extensions. xFormers was built for: PyTorch 2.1.0+cu121",
     "version_mismatch"),
    # protobuf 4 against code generated for protobuf 3
    ("TypeError: Descriptors cannot be created directly. If this call came from a _pb2.py file, your generated "
     "code is out of date and must be regenerated with protoc >= 3.19.0.", "version_mismatch"),
    # transformers older than the model's classes
    ("ValueError: Tokenizer class Qwen2Tokenizer does not exist or is not currently imported.", "version_mismatch"),
    ("ValueError: Unrecognized configuration class <class 'x.XConfig'> for this kind of AutoModel: "
     "AutoModelForCausalLM.", "version_mismatch"),
    ("ImportError: This modeling file requires a newer version of transformers", "version_mismatch"),
    ("AttributeError: np.NaN was removed in the NumPy 2.0 release. Use np.nan instead.", "version_mismatch"),
    ("RuntimeError: this node requires PyTorch 2.4 or newer", "version_mismatch"),
    # Windows: the DLL is there but lacks a function the extension was built against (not a missing one)
    ("ImportError: DLL load failed while importing _C: The specified procedure could not be found.",
     "version_mismatch"),
    ("ImportError: DLL load failed while importing cv2: The specified module could not be found.",
     "missing_dependency"),
    # huggingface_hub reading a path that is no folder here as a repo id
    ("OSError: Incorrect path_or_model_id: '/content/Wan2.1'. Please provide either the path to a local folder "
     "or the repo_id of a model on the Hub.", "component_missing"),
    ("huggingface_hub.errors.HFValidationError: Repo id must be in the form 'repo_name' or 'namespace/repo_name': "
     "'/root/models/wan'. Use `repo_type` argument if needed.", "component_missing"),
    ("requests.exceptions.HTTPError: 404 Client Error: Entry Not Found for url: https://huggingface.co/x/y",
     "component_missing"),
    ("FileNotFoundError: Model file not found: /models/wan.safetensors", "component_missing"),
    ("Exception: Could not find the LoRA file lightx2v.safetensors", "component_missing"),
    # inputs the writer or the resize cannot take
    ("OSError: cannot write mode RGBA as JPEG", "invalid_input"),
    ("ValueError: Unsupported image type <class 'str'>", "invalid_input"),
    ("RuntimeError: Failed to open input video clip.mp4", "invalid_input"),
    ("RuntimeError: Input and output sizes should be greater than 0, but got input (H: 0, W: 0) output "
     "(H: 0, W: 0)", "invalid_input"),
    ("ValueError: num_inference_steps must be a positive integer", "invalid_input"),
    # FlashAttention: Ampere/Hopper kernels only; half precision only
    ("RuntimeError: Expected is_sm90 || is_sm8x to be true, but got false.", "accelerator_unavailable"),
    ("RuntimeError: FlashAttention only support fp16 and bf16 data type", "dtype_mismatch"),
    # triton compiling its kernels with the system's C compiler
    ("RuntimeError: Failed to find C compiler. Please specify via CC environment variable.", "missing_dependency"),
    # the hub unreachable while a model file is fetched
    ("requests.exceptions.ConnectionError: HTTPSConnectionPool(host='huggingface.co', port=443): Max retries "
     "exceeded with url: /Wan-AI/Wan2.1-T2V-1.3B-Diffusers/resolve/main/model_index.json", "component_missing"),
    # a skip connection one row short: an odd size halved by the U-Net (not a channel count)
    ("RuntimeError: Sizes of tensors must match except in dimension 1. Expected size 68 but got size 67 for "
     "tensor number 1 in the list.", "invalid_input"),
    ("RuntimeError: The size of tensor a (31) must match the size of tensor b (30) at non-singleton dimension 3",
     "invalid_input"),
    # transformers' quantizers and other "your release is behind" wordings
    ("ImportError: Using `bitsandbytes` 4-bit quantization requires the latest version of bitsandbytes",
     "version_mismatch"),
    ("ValueError: fp8 weights are only supported from version 2.1 of this node pack", "version_mismatch"),
    ("RuntimeError: set_timesteps(sigmas=...) was added in v0.30.0 of diffusers", "version_mismatch"),
    ("Your ComfyUI is outdated, this node will not work", "version_mismatch"),
    ("RuntimeError: Update transformers to the latest version to load this model", "version_mismatch"),
])
def test_library_wordings(text, category):
    assert diagnose(text).category == category, diagnose(text).to_text()


def test_comfyui_core_objects_lacking_what_a_node_pack_calls_are_out_of_step():
    pack = _tb((f"{_COMFY}/execution.py", "get_output_data", "return_values = map_node_over_list(obj)"),
               (f"{_COMFY}/custom_nodes/SomePack/nodes.py", "patch", "m = model.get_wrapper_x()"),
               last="AttributeError: 'ModelPatcher' object has no attribute 'get_wrapper_x'")
    windows = pack.replace("/home/u/ComfyUI/", "E:\\ComfyUI\\").replace("/", "\\")
    own = _tb(("/home/u/train.py", "<module>", "main()"), ("/home/u/mylib/train.py", "main", "x = model.vae.get_x()"),
              last="AttributeError: 'VAE' object has no attribute 'get_x'")
    assert diagnose(pack).category == "version_mismatch"
    assert diagnose(windows).category == "version_mismatch"
    assert diagnose(own).category != "version_mismatch"  # a class of one's own that happens to be called VAE


def test_a_latent_channel_mismatch_says_which_model_to_load():
    d = diagnose("Given groups=1, weight of size [3072, 32, 2, 2], expected input[13, 16, 60, 90] to have 32 channels, "
                 "but got 16 channels instead")
    assert d.category == "invalid_input" and (d.evidence["expected_channels"], d.evidence["latent_channels"]) == (32, 16)
    assert any("image-to-video checkpoint" in step for step in d.next_steps)


def test_none_inside_a_node_packs_own_code_stays_the_packs():
    # A None met inside a pack's own code may be the pack's bug; only ComfyUI's nodes say the input was empty.
    pack = _tb((f"{_COMFY}/execution.py", "get_output_data", "return_values = map_node_over_list(obj)"),
               (f"{_COMFY}/custom_nodes/SomePack/nodes.py", "encode", "out = self.vision.model(image)"),
               last="AttributeError: 'NoneType' object has no attribute 'model'")
    core = _tb((f"{_COMFY}/execution.py", "get_output_data", "return_values = map_node_over_list(obj)"),
               (f"{_COMFY}/nodes.py", "encode", "output = clip_vision.encode_image(image, crop=crop_image)"),
               last="AttributeError: 'NoneType' object has no attribute 'encode_image'")
    assert diagnose(pack).category != "component_missing"
    assert diagnose(core).category == "component_missing"


@pytest.mark.parametrize(("text", "stage"), [
    # a model's own tokenizer being built from its files is a load, not a prompt being encoded
    (_tb(("/home/u/run.py", "<module>", "tok = T5Tokenizer.from_pretrained(path)"),
         (f"{_SITE}/transformers/tokenization_utils_base.py", "_from_pretrained", "tokenizer = cls(*init_inputs)"),
         (f"{_SITE}/transformers/models/t5/tokenization_t5.py", "__init__", "self.sp_model = self.get_spm_processor()"),
         (f"{_SITE}/transformers/models/t5/tokenization_t5.py", "get_spm_processor", "model_pb2 = import_protobuf()"),
         last="ImportError: requires the protobuf library"), "load"),
    # ... while BatchEncoding.__init__ (tokenization_utils_base.py) runs for every tokenized prompt
    (_tb((f"{_SITE}/diffusers/pipelines/wan/pipeline_wan.py", "_get_t5_prompt_embeds", "inputs = self.tokenizer(p)"),
         (f"{_SITE}/transformers/tokenization_utils_base.py", "__call__", "encodings = self._call_one(text)"),
         (f"{_SITE}/transformers/tokenization_utils_base.py", "__init__", "self.convert_to_tensors(tensor_type)"),
         last="ValueError: Unable to create tensor"), "text_encode"),
    # a LoRA read and merged into the model
    (_tb(("/home/u/run.py", "<module>", "pipe.load_lora_weights(repo, weight_name=name)"),
         (f"{_SITE}/diffusers/loaders/lora_pipeline.py", "lora_state_dict", "state_dict = _fetch_state_dict(repo)"),
         (f"{_SITE}/diffusers/loaders/lora_conversion_utils.py", "_convert_non_diffusers_wan_lora_to_diffusers",
          "k = original_state_dict.pop(key)"),
         last="KeyError: 'blocks.0.attn.q.lora_down.weight'"), "load"),
    (_tb((f"{_SITE}/peft/tuners/tuners_utils.py", "inject_adapter", "self._create_and_replace(config, name)"),
         last="ValueError: Target modules {'q'} not found in the base model."), "load"),
    # an app's own helper moving a model onto the GPU
    (_tb(("/home/u/app/wgp.py", "generate", "move_model_to_device(pipe.transformer, 'cuda')"),
         ("/home/u/app/offload.py", "move_model_to_device", "torch.cuda.synchronize()"),
         last="RuntimeError: CUDA error: an illegal memory access was encountered"), "to_device"),
    # the prompt (or a list of them) going through the text encoder
    (_tb(("/home/u/app/pipeline.py", "__call__", "embeds = self.encode_prompts(prompts)"),
         ("/home/u/app/pipeline.py", "encode_prompts", "return [self.te(p) for p in prompts]"),
         last="RuntimeError: something failed"), "text_encode"),
    # the log's last line before the error: the input picture being resized
    ("Resizing input image to 832x480\nTraceback (most recent call last):\n  File \"/a/b.py\", line 1, in x\n"
     "    y()\nRuntimeError: something failed", "preprocess"),
    ("Loading image encoder ...\nRuntimeError: something failed", "load"),
    # an app resizing or resampling its input (Wan2GP's helpers)
    (_tb(("/a/Wan2GP/wgp.py", "generate_video", "frames = get_resampled_video(video_guide, start, max_frames)"),
         ("/a/Wan2GP/wgp.py", "get_resampled_video", "frames = reader.get_batch(frame_nos)"),
         last="RuntimeError: something failed"), "preprocess"),
    (_tb(("/a/app/run.py", "main", "img = resize_lanczos(img, h, w)"),
         ("/a/app/utils.py", "resize_lanczos", "return img.resize((w, h))"),
         last="ValueError: something failed"), "preprocess"),
    # bitsandbytes quantizing its layers as they move onto the GPU
    (_tb(("/home/u/run.py", "<module>", "run(pipe)"),
         (f"{_SITE}/bitsandbytes/nn/modules.py", "_quantize", "w_4bit, quant_state = bnb.functional.quantize_4bit(w)"),
         last="RuntimeError: something failed"), "to_device"),
    # diffusers converting a single-file checkpoint; transformers swapping in quantized layers
    (_tb((f"{_SITE}/diffusers/loaders/single_file_utils.py", "convert_wan_transformer_to_diffusers",
          "converted_state_dict[new_key] = checkpoint.pop(key)"), last="KeyError: 'head.head.weight'"), "load"),
    (_tb((f"{_SITE}/transformers/integrations/bitsandbytes.py", "replace_with_bnb_linear",
          "model = _replace_with_bnb_linear(model)"), last="RuntimeError: something failed"), "load"),
    # SD.Next's log line before the error
    ("12:00:01-123 INFO     Load model: /models/Wan2.1-T2V-1.3B\nRuntimeError: something failed", "load"),
    # kijai's text encode node calling its T5 on the prompts
    (_tb((f"{_COMFY}/custom_nodes/ComfyUI-WanVideoWrapper/nodes.py", "process",
          "context = encoder(positive_prompts, device)"), last="RuntimeError: something failed"), "text_encode"),
    # DiffSynth-Studio setting up its offloading
    (_tb(("/x/DiffSynth-Studio/diffsynth/pipelines/wan_video_new.py", "enable_vram_management",
          "enable_vram_management(self.dit, module_map=module_map)"), last="RuntimeError: something failed"),
     "to_device"),
    # a quantizer checking the environment inside from_pretrained; a GGUF file being read
    (_tb((f"{_SITE}/transformers/quantizers/quantizer_bnb_4bit.py", "validate_environment", "raise ImportError(msg)"),
         last="ImportError: something is missing"), "load"),
    (_tb((f"{_COMFY}/custom_nodes/ComfyUI-GGUF/loader.py", "gguf_sd_loader", "reader = gguf.GGUFReader(path)"),
         (f"{_SITE}/gguf/gguf_reader.py", "__init__", "self._build_tensors(offs, tensors_fields)"),
         last="ValueError: something failed"), "load"),
])
def test_stages_from_library_frames_and_logs(text, stage):
    d = diagnose(text)
    assert d.stage == stage, d.to_text()


@pytest.mark.parametrize(("text", "stage"), [
    # diffusers' image-to-video pipeline reads the input image on this line (not the video's postprocess)
    (_tb((f"{_SITE}/diffusers/pipelines/wan/pipeline_wan_i2v.py", "__call__",
          "image = self.video_processor.preprocess(image, height=height, width=width).to(device, dtype=torch.float32)"),
         last="RuntimeError: something went wrong"), "preprocess"),
    # VaeImageProcessor's input side
    (_tb((f"{_SITE}/diffusers/pipelines/wan/pipeline_wan_i2v.py", "__call__", "image = self.prepare(image)"),
         (f"{_SITE}/diffusers/image_processor.py", "resize", "image = image.resize((width, height))"),
         last="ValueError: bad size"), "preprocess"),
    # Pillow opening the input
    (_tb(("/home/u/run.py", "<module>", "main()"), (f"{_SITE}/PIL/Image.py", "open", "raise UnidentifiedImageError(msg)"),
         last="OSError: broken data stream when reading image file"), "preprocess"),
    # ComfyUI's class type with spaces, in its older error format
    ("Error occurred when executing VAE Decode (Tiled):\n\nsomething failed\n\n  File \"execution.py\", line 1", "vae_decode"),
    ("Error occurred when executing My CLIPTextEncode Plus:\n\nsomething failed", "text_encode"),
    # nodes that read or resize the input picture or video
    ("## Error Details\n- **Node Type:** VHS_LoadVideo\n- **Exception Type:** RuntimeError\n"
     "- **Exception Message:** cannot read frames", "preprocess"),
    ("## Error Details\n- **Node Type:** ImageResizeKJ\n- **Exception Type:** RuntimeError\n"
     "- **Exception Message:** bad size", "preprocess"),
    # an import made inside a running node fails in that node's stage, not while anything loads
    ("## Error Details\n- **Node Type:** KSamplerAdvanced\n- **Exception Type:** ImportError\n"
     "- **Exception Message:** cannot import name 'Flux2' from 'comfy.latent_formats'\n## Stack Trace\n"
     + _tb((f"{_COMFY}/execution.py", "process_inputs", "results.append(getattr(obj, func)(**inputs))"),
           (f"{_COMFY}/custom_nodes/SomePack/sampler.py", "sample", "from comfy.latent_formats import Flux2"),
           last="ImportError: cannot import name 'Flux2' from 'comfy.latent_formats'"), "denoise"),
    # ... while a node pack imported at start-up is still a load
    (_tb((f"{_COMFY}/nodes.py", "load_custom_node", "module_spec.loader.exec_module(module)"),
         (f"{_COMFY}/custom_nodes/SomePack/__init__.py", "<module>", "from .nodes import NODE_CLASS_MAPPINGS"),
         last="ImportError: cannot import name 'Flux2' from 'comfy.latent_formats'"), "load"),
    # mmgp (Wan2GP) reading a checkpoint file is a load, not a move
    (_tb(("/app/wgp.py", "load_models", "pipe = model_factory()"),
         (f"{_SITE}/mmgp/offload.py", "fast_load_transformers_model", "state_dict = safetensors2.load(path)"),
         last="Exception: Missing keys: ['lm_head.weight']"), "load"),
    # a part being read from disk, named in the log line before the traceback
    ("Loading Text Encoder 'ckpts/umt5-xxl/umt5_xxl_int8.safetensors' ...\n"
     + _tb(("/app/wgp.py", "main", "run()"), last="ValueError: boom"), "load"),
    # ComfyUI's CLIP objects encode with encode_token_weights
    ("AttributeError: 'SDClipModel' object has no attribute 'encode_token_weights'", "text_encode"),
    # transformers refuses to move a bitsandbytes model itself
    ("ValueError: `.to` is not supported for `4-bit` or `8-bit` bitsandbytes models. Please use the model as it is.",
     "to_device"),
    # Pillow cannot read the input file; an array where Pillow's Image was expected
    ("PIL.UnidentifiedImageError: cannot identify image file 'start.webp'", "preprocess"),
    ("AttributeError: 'numpy.ndarray' object has no attribute 'convert'", "preprocess"),
    # diffusers' ModelMixin.to refusing a move; the rest of its model files build or load a model
    (_tb(("/home/u/run.py", "<module>", "pipe.transformer.to('cuda')"),
         (f"{_SITE}/diffusers/models/modeling_utils.py", "to", "raise ValueError(msg)"),
         last="ValueError: something about the move"), "to_device"),
    (_tb(("/home/u/run.py", "<module>", "model = build()"),
         (f"{_SITE}/transformers/configuration_utils.py", "__init__", "setattr(self, key, value)"),
         last="AttributeError: can't set attribute"), "load"),
    (_tb(("/home/u/run.py", "<module>", "get()"),
         (f"{_SITE}/huggingface_hub/file_download.py", "_raise_on_head_call_error", "raise LocalEntryNotFoundError(m)"),
         last="huggingface_hub.errors.LocalEntryNotFoundError: cannot find the requested files"), "load"),
    # sentencepiece reading its model file, and encoding a prompt
    (_tb(("/home/u/run.py", "<module>", "tok = make()"),
         (f"{_SITE}/sentencepiece/__init__.py", "LoadFromFile", "return _sentencepiece.Load(self, arg)"),
         last="OSError: Not found: \"spiece.model\""), "load"),
    (_tb(("/home/u/run.py", "<module>", "ids = run(prompt)"),
         (f"{_SITE}/sentencepiece/__init__.py", "EncodeAsIds", "return self.Encode(input)"),
         last="TypeError: not a string"), "text_encode"),
    # ComfyUI's CLIP.tokenize; its ModelPatcher placing weights on the device
    (_tb((f"{_COMFY}/nodes.py", "encode", "tokens = clip.tokenize(text)"),
         (f"{_COMFY}/comfy/sd.py", "tokenize", "return self.tokenizer.tokenize_with_weights(text)"),
         last="IndexError: list index out of range"), "text_encode"),
    (_tb((f"{_COMFY}/execution.py", "get_output_data", "return_values = map_node_over_list(obj)"),
         (f"{_COMFY}/comfy/model_patcher.py", "partially_load", "self.patch_weight_to_device(key)"),
         last="KeyError: 'diffusion_model.blocks.0.weight'"), "to_device"),
    # the original Wan code encodes the start image with its CLIP; DiffSynth prepares the input image
    (_tb(("/w/Wan2.1/generate.py", "generate", "video = wan_i2v.generate(prompt, img)"),
         ("/w/Wan2.1/wan/image2video.py", "generate", "clip_context = self.clip.visual([img[:, None, :, :]])"),
         last="RuntimeError: bad image"), "text_encode"),
    (_tb(("/w/DiffSynth-Studio/diffsynth/pipelines/wan_video_new.py", "process",
          "image = pipe.preprocess_image(input_image.resize((width, height))).to(pipe.device)"),
         last="AttributeError: 'str' object has no attribute 'resize'"), "preprocess"),
    # kijai's wrapper: the sampler's and the model loader's own files
    (_tb((f"{_COMFY}/execution.py", "process_inputs", "results.append(getattr(obj, func)(**inputs))"),
         (f"{_COMFY}/custom_nodes/ComfyUI-WanVideoWrapper/nodes_sampler.py", "process", "x = step(latent)"),
         last="TypeError: unsupported operand"), "denoise"),
    (_tb((f"{_COMFY}/execution.py", "process_inputs", "results.append(getattr(obj, func)(**inputs))"),
         (f"{_COMFY}/custom_nodes/ComfyUI-WanVideoWrapper/nodes_model_loading.py", "build", "x = cfg['dim']"),
         last="KeyError: 'dim'"), "load"),
    # ComfyUI detecting which model a checkpoint is; the original Wan code building its parts
    (_tb((f"{_COMFY}/nodes.py", "load_unet", "model = comfy.sd.load_diffusion_model(unet_path)"),
         (f"{_COMFY}/comfy/model_detection.py", "detect_unet_config", "dim = state_dict[key].shape[0]"),
         last="KeyError: 'x_embedder.weight'"), "load"),
    (_tb(("/w/Wan2.1/generate.py", "generate", "wan_t2v = wan.WanT2V(config=cfg, checkpoint_dir=args.ckpt_dir)"),
         ("/w/Wan2.1/wan/text2video.py", "__init__", "self.vae = WanVAE(vae_pth=os.path.join(checkpoint_dir, v))"),
         last="FileNotFoundError: [Errno 2] No such file or directory: 'Wan2.1_VAE.pth'"), "load"),
    # the report says which call was running
    ("I get this when loading WanPipeline.from_pretrained('Wan-AI/x'):\nAttributeError: 'X' object has no "
     "attribute 'y'", "load"),
])
def test_stages_from_bare_lines(text, stage):
    d = diagnose(text)
    assert d.stage == stage, d.to_text()


# --- advice agrees with the plan ---------------------------------------------------------------

# Skips that depend on this machine or on a model folder a pasted text cannot name; every other
# skip of a suggested strategy (no effect here, changes the output, guidance only, needs consent,
# needs a GPU on a CPU failure) means the advice and the plan disagree.
_ENVIRONMENT_SKIPS = re.compile(r"^(?:needs the packages? |needs \d+ or more GPUs|needs diffusers >= "
                                r"|no model folder is known)")


def _plan_device(d) -> str:
    device = str(d.evidence.get("device", ""))
    if device.startswith("cpu"):
        return "cpu"
    if device.startswith(("mps", "xpu")):
        return device.split(":")[0]
    return "cuda"


ALL_CASES = sorted(p for p in CORPUS.rglob("*.txt"))


@pytest.mark.parametrize("path", ALL_CASES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_try_list_names_only_what_the_plan_would_run(path):
    d = diagnose(read_case(path)[1])
    if not d.suggested:
        return
    plan = wan_nb.plan(d, None, None, device=_plan_device(d))
    for name in d.suggested:
        candidate = plan.candidate(name)  # KeyError: the plan does not even consider it
        assert candidate.planned or _ENVIRONMENT_SKIPS.match(candidate.skip_reason), (name, candidate.skip_reason)


def test_vae_slicing_is_not_suggested_for_a_single_video():
    d = diagnose("Traceback (most recent call last):\n"
                 '  File "/x/diffusers/models/autoencoders/autoencoder_kl_wan.py", line 1, in _decode\n'
                 "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 3.00 GiB.")
    assert d.stage == "vae_decode" and d.suggested[0] == "vae_tiling" and "vae_slicing" not in d.suggested
    skipped = wan_nb.plan(d, None, None, device="cuda").candidate("vae_slicing")
    assert not skipped.planned and "no effect" in skipped.skip_reason


def test_a_cpu_failure_is_not_told_to_offload_to_a_gpu():
    d = diagnose("torch.OutOfMemoryError: CPU out of memory under wan_nb.memory_budget: Tried to allocate "
                 "60.75 KiB; budget 6.00 MiB; in use 5.96 MiB.")
    assert d.evidence["device"].startswith("cpu") and d.suggested
    assert not {"model_cpu_offload", "group_offload", "sequential_cpu_offload"} & set(d.suggested)


# --- strict mode and robustness --------------------------------------------------------------------


def test_strict_mode_lets_rule_errors_through(monkeypatch):
    from wan_nb.diagnosis import categories as _patterns  # where the category rules live

    def broken(err):
        raise KeyError("a bug in a rule")

    monkeypatch.setattr(_patterns, "classify", broken)
    with pytest.raises(KeyError, match="a bug in a rule"):
        diagnose("torch.OutOfMemoryError: CUDA out of memory.")
    monkeypatch.delenv("WAN_NB_STRICT_DIAGNOSE")
    d = diagnose("torch.OutOfMemoryError: CUDA out of memory.")
    assert (d.category, d.stage) == ("unknown", "unknown")
    assert "KeyError inside wan_nb.diagnosis" in d.evidence["reason"]


@pytest.mark.parametrize("value", ["", b"", bytes(range(256)) * 256, None])
def test_empty_and_binary_input(value):
    d = diagnose(value)
    assert (d.category, d.stage) == ("unknown", "unknown") and d.evidence["reason"]


def test_200_kb_of_real_reports_is_read_to_its_last_error():
    texts = [read_case(p)[1] for p in REAL_FILES]
    big = "\n".join(texts * 3)
    assert len(big) > 200_000
    tail = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."
    d = diagnose(big[-200_000:] + "\n" + tail)
    assert d.category == "out_of_memory" and d.evidence["tried_to_allocate"] == 2 * 2**30


def test_text_readers_answers_are_of_this_corpus_and_vocabulary():
    # benchmarks/text_readers.py scores these: each answer names a report of its own part.
    readers = Path(__file__).parents[1] / "benchmarks" / "data" / "text_readers"
    stems = {p.stem for p in REAL_FILES}
    for name in ("tuned_reader1.json", "tuned_reader2.json", "heldout_reader1.json"):
        answers = json.loads((readers / name).read_text(encoding="utf-8"))["answers"]
        assert answers and set(answers) <= stems, name
        assert all((stem in HELD_OUT) == name.startswith("heldout") for stem in answers), name
        for stem, answer in answers.items():
            assert answer["category"] in CATEGORIES and answer["stage"] in STAGES, (name, stem)
            assert set(answer["alternatives"]) <= set(CATEGORIES) - {answer["category"]}, (name, stem)
