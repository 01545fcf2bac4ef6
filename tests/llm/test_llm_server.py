"""The LLM server on its default backend (llama.cpp in-process, the bundled SmolLM2), through the real client."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path

from wyoming.asr import Transcript
from wyoming.client import AsyncClient
from wyoming.event import Event
from wyoming.handle import HandledChunk

from chatty_common.health_check import describe
from wyoming_chatty_llm.client import AnswerStream, ask, first_text, stop_answers


def _metrics(llm_dir) -> list[dict]:
    path = llm_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_info_offers_a_streaming_handle_program_with_languages(llm_server):
    info = await describe(llm_server.uri)
    assert not info.asr and not info.tts
    [program] = info.handle
    assert program.name == "chatty-llm" and program.installed and program.supports_handled_streaming
    [model] = program.models
    assert model.name == "SmolLM2-135M-Instruct"
    assert model.languages == ["en"]  # Home Assistant treats an empty list as "no languages"


async def test_answer_streams_in_order_and_chunks_join_to_the_final_text(llm_server, llm_dir):
    conversation = f"paris-{uuid.uuid4().hex[:6]}"
    answer = await ask(llm_server.uri, "What is the capital of France?", conversation)
    assert answer.handled
    assert "paris" in answer.text.lower()
    types = answer.types
    assert types[0] == "handled-start" and types[-2:] == ["handled", "handled-stop"]
    assert set(types[1:-2]) == {"handled-chunk"} and len(types) > 4  # streamed in several pieces
    assert "".join(answer.chunks).strip() == answer.text
    assert answer.conversation_id == conversation
    [record] = [r for r in _metrics(llm_dir) if r["conversation_id"] == conversation]
    assert record["outcome"] == "handled" and record["backend"] == "llama_cpp"
    assert 0 < record["LLM-TTF_MS"] <= record["LLM-TOTAL_MS"]
    assert f"conversation={conversation}" in llm_server.log() and "LLM-TTF_MS=" in llm_server.log()


async def test_memory_follows_the_conversation_id_and_not_across_ids(llm_server):
    conversation = f"zorbo-{uuid.uuid4().hex[:6]}"
    await ask(llm_server.uri, "My name is Zorbo.", conversation)
    remembered = await ask(llm_server.uri, "What is my name?", conversation)
    assert "zorbo" in remembered.text.lower()
    stranger = await ask(llm_server.uri, "What is my name?", f"other-{uuid.uuid4().hex[:6]}")
    assert stranger.handled and "zorbo" not in stranger.text.lower()


async def test_without_an_id_memory_lasts_for_the_connection(llm_server):
    async with AsyncClient.from_uri(llm_server.uri) as client:
        from wyoming_chatty_llm.client import ask_on

        first = await ask_on(client, "My name is Zorbo.")
        second = await ask_on(client, "What is my name?")
    assert first.conversation_id and first.conversation_id == second.conversation_id
    assert "zorbo" in second.text.lower()
    # The id the server made up continues the conversation from a new connection too.
    third = await ask(llm_server.uri, "What is my name?", first.conversation_id)
    assert "zorbo" in third.text.lower()


async def test_a_speculative_answer_is_remembered_only_when_committed(llm_server, llm_dir):
    """A question asked at a pause (speculative) is answered at once but kept out of the conversation
    unless the client commits it: before the answer is done, after it, or never (it hangs up)."""
    from wyoming_chatty_llm.client import ask_on, commit

    async def speculate(conversation: str, when: str) -> None:
        async with AsyncClient.from_uri(llm_server.uri) as client:
            if when == "before":
                await client.write_event(
                    Event("transcript", {"text": "My name is Zorbo.", "context": {"conversation_id": conversation},
                                         "chatty": {"speculative": True}})
                )  # fmt: skip
                await commit(client)
                while (event := await client.read_event()) is not None and event.type != "handled-stop":
                    pass
                return
            answer = await ask_on(client, "My name is Zorbo.", conversation, speculative=True)
            assert answer.handled and answer.text
            if when == "after":
                await commit(client)
                await asyncio.sleep(0.2)  # the commit is read before the connection closes

    for when, remembered in (("never", False), ("after", True), ("before", True)):
        conversation = f"speculative-{when}-{uuid.uuid4().hex[:6]}"
        await speculate(conversation, when)
        reply = await ask(llm_server.uri, "What is my name?", conversation)
        assert ("zorbo" in reply.text.lower()) is remembered, (when, reply.text)
    records = [r for r in _metrics(llm_dir) if r["conversation_id"].startswith("speculative-never")]
    assert [r["speculative"] for r in records] == [True, False]


async def test_a_forgotten_question_is_not_remembered_committed_or_not(llm_server):
    """A satellite whose speaker went on after it ended the command asks, on a connection of its own, to stop
    and forget the answers to the first words: an answer already remembered is dropped, and a speculative
    one committed after the request is not kept; the conversation goes on as if it was never asked."""
    from wyoming_chatty_llm.client import ask_on, commit

    remembered = f"forget-remembered-{uuid.uuid4().hex[:6]}"
    assert (await ask(llm_server.uri, "My name is Zorbo.", remembered)).handled
    speculative = f"forget-speculative-{uuid.uuid4().hex[:6]}"
    async with AsyncClient.from_uri(llm_server.uri) as client:
        assert (await ask_on(client, "My name is Zorbo.", speculative, speculative=True)).handled
        async with AsyncClient.from_uri(llm_server.uri) as other:
            await other.write_event(Event("chatty-stop", {"question": "my name is ZORBO", "forget": True}))
            # (the last "My name is Zorbo." remembered: the first conversation's, not other tests')
            replied = await asyncio.wait_for(other.read_event(), 10)
        await commit(client)  # the pipeline asked it after all: too late, it was forgotten
        await asyncio.sleep(0.2)  # the commit is read before the connection closes
    assert replied is not None and replied.data == {"stopped": 0, "forgotten": 1}, replied
    for conversation in (remembered, speculative):
        reply = await ask(llm_server.uri, "What is my name?", conversation)
        assert "zorbo" not in reply.text.lower(), (conversation, reply.text)
    [error] = await _exchange(llm_server.uri, Event("chatty-stop", {"question": "hi", "forget": "yes"}))
    assert error.type == "error" and "chatty-stop 'forget' must be true or false" in error.data["text"]


async def test_an_answer_that_loops_is_stopped_and_remembered_once(llm_server, llm_dir):
    """The bundled SmolLM2 at temperature 0 answers this question with "They are apex predators, apex
    predators, apex predators. They are apex predators, ..." to its token cap; the user hears the loop
    once and the model stops writing."""
    conversation = f"loop-{uuid.uuid4().hex[:6]}"
    answer = await ask(llm_server.uri, "Which animal is the king?", conversation)
    assert answer.handled and "".join(answer.chunks).strip() == answer.text
    assert answer.text.endswith("apex predators, apex predators, apex predators"), answer.text
    assert answer.text.count("apex predators") == 3
    noticed = f"The answer for conversation {conversation} went round in a loop"
    for _ in range(50):  # the model is told to stop, not left to write to its cap: it stops at its next token
        if "Stopped generating after" in llm_server.log().partition(noticed)[2]:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(llm_server.log())
    [record] = [r for r in _metrics(llm_dir) if r["conversation_id"] == conversation]
    assert record["outcome"] == "handled" and record["chars"] == len(answer.text)


async def test_an_answer_its_listener_stopped_ends_with_what_it_has(llm_server, llm_dir):
    """A satellite interrupted while Home Assistant still waits for our answer asks, on a connection of its
    own, to stop the answers to that question: the answer ends at once as what it has written (Home
    Assistant's run can then end), the model stops, the conversation goes on from it; other questions'
    answers are left alone."""
    conversation = f"stopped-{uuid.uuid4().hex[:6]}"
    async with AsyncClient.from_uri(llm_server.uri) as client, AsyncClient.from_uri(llm_server.uri) as other:
        story = AnswerStream(client)
        await story.ask("Tell me a long story about a dragon.", conversation)
        pieces = story.pieces(timeout=30)
        first = await anext(pieces)
        assert await stop_answers(other, "What is the capital of France?") == 0  # not being written
        assert await stop_answers(other, "tell me a long story about a Dragon") == 1  # as said: case, no period
        rest = [piece async for piece in pieces]
    answer = story.answer
    assert answer.handled and answer.text == (first + "".join(rest)).strip() and answer.text, answer
    assert answer.stopped  # whoever speaks it is told it was stopped
    assert len(rest) <= 2, (first, rest)  # it stops after the piece being written (max_tokens is 60)
    assert f"The answer for conversation {conversation} was stopped by its listener" in llm_server.log()
    [record] = [r for r in _metrics(llm_dir) if r["conversation_id"] == conversation]
    assert record["outcome"] == "handled" and record["chars"] == len("".join([first, *rest]))
    async with AsyncClient.from_uri(llm_server.uri) as other:
        assert await stop_answers(other, "Tell me a long story about a dragon.") == 0  # over: nothing to stop
    [error] = await _exchange(llm_server.uri, Event("chatty-stop", {"question": 3}))
    assert error.type == "error" and "chatty-stop needs a 'question' string" in error.data["text"]
    capital = await ask(llm_server.uri, "What is the capital of France?", conversation)
    assert capital.handled and not capital.stopped


async def test_a_watch_on_a_question_hears_when_its_speculative_answer_begins(llm_server):
    """A satellite in Home Assistant mode watches the words of a pause (its own connection) while Home
    Assistant asks them as a speculative question (another one): told once the answer has its first text."""
    question = f"What is the capital of France? ({uuid.uuid4().hex[:6]})"  # asked by no other test
    async with AsyncClient.from_uri(llm_server.uri) as watcher, AsyncClient.from_uri(llm_server.uri) as asker:
        watching = asyncio.create_task(first_text(watcher, question.upper(), 5.0))
        await asyncio.sleep(0.05)
        stream = AnswerStream(asker)
        await stream.ask(question, f"watch-{uuid.uuid4().hex[:6]}", speculative=True)
        first = await anext(stream.pieces(timeout=30))
        assert await asyncio.wait_for(watching, 10) == (True, True)
        assert first.strip()
        # Words nobody asks (another agent answers them): given up on long before the wait asked for.
        started = asyncio.get_running_loop().time()
        assert await first_text(watcher, "Who painted the Mona Lisa?", 5.0) == (False, False)
        assert asyncio.get_running_loop().time() - started < 2.0
    [error] = await _exchange(llm_server.uri, Event("chatty-first-text", {"question": "hi", "within": 60}))
    assert error.type == "error" and "chatty-first-text needs 'within'" in error.data["text"]


async def test_empty_and_oversized_questions_get_a_spoken_refusal(llm_server):
    empty = await ask(llm_server.uri, "   ")
    assert not empty.handled and empty.text == "I didn't catch a question."
    assert empty.types == ["not-handled"]
    huge = await ask(llm_server.uri, "why " * 1000)
    assert not huge.handled and huge.text == "That question is too long for me."


async def _exchange(uri: str, *events: Event) -> list[Event]:
    async with AsyncClient.from_uri(uri) as client:
        for event in events:
            await client.write_event(event)
        received = []
        while (event := await asyncio.wait_for(client.read_event(), 30)) is not None:
            received.append(event)
        return received


async def test_bad_events_get_an_error_and_the_server_keeps_serving(llm_server):
    [error] = await _exchange(llm_server.uri, Event("transcript", {"context": {"conversation_id": "x"}}))
    assert error.type == "error" and "transcript needs a 'text' string" in error.data["text"]
    [error] = await _exchange(llm_server.uri, Event("transcript", {"text": "hi", "context": "not an object"}))
    assert error.type == "error" and "'context' must be a JSON object" in error.data["text"]
    [error] = await _exchange(llm_server.uri, Event("intent", {"name": "HassTurnOn"}))
    assert error.type == "error" and "not intent" in error.data["text"]
    assert (await ask(llm_server.uri, "What is the capital of France?")).handled


async def test_a_client_that_disconnects_cancels_its_generation(llm_server, llm_dir):
    conversation = f"gone-{uuid.uuid4().hex[:6]}"
    async with AsyncClient.from_uri(llm_server.uri) as client:
        await client.write_event(
            Transcript(text="Tell me a long story about a dragon.", context={"conversation_id": conversation}).event()
        )
        while not HandledChunk.is_type((await client.read_event()).type):
            pass
    # The generation stops at its next token (max_tokens is 60), and the turn is recorded as cancelled.
    stopped = re.compile(r"Stopped generating after (\d+) tokens")
    for _ in range(50):
        records = [r for r in _metrics(llm_dir) if r["conversation_id"] == conversation]
        counts = [int(n) for n in stopped.findall(llm_server.log())]
        if records and counts:
            break
        await asyncio.sleep(0.1)
    [record] = records
    assert record["outcome"] == "cancelled"
    assert counts and counts[-1] < 30, llm_server.log()
    assert (await ask(llm_server.uri, "What is the capital of France?")).handled


async def test_questions_on_one_connection_are_answered_in_order(llm_server):
    async with AsyncClient.from_uri(llm_server.uri) as client:
        for question in ("What is the capital of France?", "What is the capital of Italy?"):
            await client.write_event(Transcript(text=question).event())
        finals = []
        while len(finals) < 2:
            event = await asyncio.wait_for(client.read_event(), 30)
            if event.type in ("handled", "not-handled"):
                finals.append(event.data["text"].lower())
    assert "paris" in finals[0] and "rome" in finals[1]


def _thread_nice_values(pid: int) -> dict[int, int]:
    """Each thread's nice value, from /proc (field 19 of stat)."""
    values = {}
    for task in (Path("/proc") / str(pid) / "task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        values[int(task.name)] = int(fields[16])
    return values


async def test_generation_yields_the_cpu_and_the_server_does_not(llm_server):
    # The model's threads run at nice 10 (the default), so speech on the same machine goes first;
    # the thread that talks to clients keeps the normal priority.
    answer = await ask(llm_server.uri, "What is two plus two?", f"nice-{uuid.uuid4().hex[:6]}")
    assert answer.handled
    values = _thread_nice_values(llm_server.process.pid)
    assert values[llm_server.process.pid] == 0
    assert sorted(set(values.values())) == [0, 10], values
