"""Item perception for video datasets (VRAgent-R1-style): frames, key frames by frame-title similarity, captions the
LLM user reads. ``perceive`` runs once per item, never per env step."""

from simulators.perception.captions import CaptionError, SignalCaptioner, VLMCaptioner
from simulators.perception.frames import VideoError, read_frames, sample_indices, video_info
from simulators.perception.keyframes import FrameScorer, key_frames
from simulators.perception.perceive import PerceptionConfig, PerceptionReport, load_captions, perceive, video_paths

__all__ = ["CaptionError", "VLMCaptioner", "FrameScorer", "PerceptionConfig", "PerceptionReport", "SignalCaptioner", "VideoError", "key_frames", "load_captions", "perceive",
           "read_frames", "sample_indices", "video_info", "video_paths"]
