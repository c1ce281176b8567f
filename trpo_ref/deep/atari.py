"""ALE games (ale-py, bundled ROMs) as the training loop sees them: preprocessed frame stacks.

The paper's Atari experiments (section 8, Table 1) give the network but not the preprocessing.
Our pipeline, innermost first, each a choice stated where the paper is silent:

1. ``gym.make("ALE/<Game>-v5", frameskip=1, obs_type="grayscale", repeat_action_probability=p,
   max_episode_steps=F)``: ALE's own grayscale (luminance) screen, 210x160 uint8; no frame
   skipping inside ALE so that step 2 can pool frames; sticky actions with probability p (the
   config's ``atari_repeat_action_probability``; 0.0 by default, the deterministic ALE of the
   paper's time, not v5's 0.25); a time limit of F *frames* (108,000 = 30 minutes of play).
2. :class:`gymnasium.wrappers.MaxAndSkipObservation`: each action repeated ``frame_skip`` times
   (4, as in DQN, Mnih et al. 2013), rewards summed, the observation the pixel-wise max of the
   last two frames (removes sprite flicker).
3. :class:`Downsample2x2`: 2x2 mean pooling to 105x80 uint8. DQN resized to 110x84 and cropped
   to 84x84; ``gymnasium.wrappers.AtariPreprocessing``/``ResizeObservation`` would need OpenCV,
   which this project does not depend on, and an exact 2x2 pool needs no interpolation choice.
4. :class:`gymnasium.wrappers.FrameStackObservation`: the last ``frame_stack`` (4) frames,
   padded at reset with copies of the first frame (its default); observation
   (frame_stack, 105, 80) uint8.

Rewards are never clipped or rescaled, so the episode returns that
``RecordEpisodeStatistics`` (put around all of this by :func:`trpo_ref.deep.trpo.make_env`)
reports are the game's own scores, comparable with Table 1; its episode lengths count agent
steps (one per action), as the training loop does. Frames stay uint8 all the way into the
networks, which scale them by 1/255 (:class:`trpo_ref.deep.policies.ConvTrunk`).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

ATARI_PREFIX = "ALE/"


def is_atari_id(env_id: str) -> bool:
    """ALE games are addressed by their ale-py ids, e.g. ``ALE/Pong-v5``."""
    return env_id.startswith(ATARI_PREFIX)


def register_ale_envs() -> None:
    """Register ale-py's environments with gymnasium (idempotent; imported only when needed)."""
    import ale_py

    gym.register_envs(ale_py)


class Downsample2x2(gym.ObservationWrapper):
    """(H, W) uint8 frames -> (H // 2, W // 2) uint8: the mean of each 2x2 block, rounded."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        height, width = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 255, (height // 2, width // 2), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        height, width = self.observation_space.shape
        frame = observation[: 2 * height, : 2 * width].astype(np.uint16)
        # Sum of four uint8 values fits in uint16; +2 then // 4 rounds half up. Four strided
        # adds: the integers of a (1, 3)-axis sum, several times faster (issue 16).
        total = frame[0::2, 0::2] + frame[0::2, 1::2] + frame[1::2, 0::2] + frame[1::2, 1::2]
        return ((total + 2) // 4).astype(np.uint8)


def make_atari_env(
    env_id: str,
    frame_skip: int = 4,
    frame_stack: int = 4,
    repeat_action_probability: float = 0.0,
    max_episode_frames: int = 108_000,
) -> gym.Env:
    """The preprocessed game of the module docstring (without RecordEpisodeStatistics)."""
    register_ale_envs()
    env = gym.make(env_id, frameskip=1, obs_type="grayscale",
                   repeat_action_probability=repeat_action_probability,
                   max_episode_steps=max_episode_frames)
    if frame_skip > 1:
        env = gym.wrappers.MaxAndSkipObservation(env, skip=frame_skip)
    env = Downsample2x2(env)
    return gym.wrappers.FrameStackObservation(env, frame_stack)
