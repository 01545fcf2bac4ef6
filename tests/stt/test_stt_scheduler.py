"""The decode scheduler runs the most urgent decode first, oldest first within a priority."""

from __future__ import annotations

import asyncio

import numpy as np

from wyoming_chatty_stt.scheduler import DecodeJob, DecodeScheduler, Priority
from wyoming_chatty_stt.transcriber import DecodeOptions


async def test_final_decodes_jump_the_queue_and_equal_priorities_keep_their_order(tiny_transcriber):
    scheduler = DecodeScheduler(tiny_transcriber, workers=1)
    started: list[str] = []
    audio = np.zeros(16000, dtype=np.float32)
    options = DecodeOptions(language="en", beam_size=1)

    def snapshot_for(name: str):
        def snapshot(job: DecodeJob):
            started.append(name)
            return audio, options, audio.size

        return snapshot

    scheduler.start()
    try:
        jobs = [scheduler.submit(Priority.PROGRESS, snapshot_for("busy"))]
        await asyncio.sleep(0.05)  # the only worker is now decoding "busy"
        for name, priority in [
            ("progress-1", Priority.PROGRESS),
            ("final-1", Priority.FINAL),
            ("endpoint-1", Priority.ENDPOINT),
            ("progress-2", Priority.PROGRESS),
            ("final-2", Priority.FINAL),
        ]:
            jobs.append(scheduler.submit(priority, snapshot_for(name)))
        withdrawn = scheduler.submit(Priority.FINAL, snapshot_for("withdrawn"))
        scheduler.withdraw(withdrawn)
        results = await asyncio.gather(*(job.result for job in jobs))
    finally:
        await scheduler.close()
    assert started == ["busy", "final-1", "final-2", "endpoint-1", "progress-1", "progress-2"]
    assert all(result.samples == 16000 for result in results)
    assert withdrawn.result.cancelled()
