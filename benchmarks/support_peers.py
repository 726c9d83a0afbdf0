"""The support benchmark's peers: what a user would build with LlamaIndex or LangChain over
the same model, embedder, chunk size and documents (run by ``benchmarks/support.py`` in the
``rag-frameworks`` peer venv, ``python scripts/peer_venv.py rag-frameworks``).

Reads one JSON job on stdin::

    {"framework": "llamaindex" | "langchain", "base_url": "http://127.0.0.1:PORT/v1",
     "model": "<served model name>", "embed_path": "<packaged MiniLM directory>",
     "chunk_chars": 800, "overlap_chars": 160, "top_k": 3, "max_tokens": 60,
     "concurrency": 4, "documents": [{"name", "text"}],
     "items": [{"id", "kind", "queries": [...]}]}

and prints one JSON line per item: ``{"id", "answer", "passages": [text, ...],
"latency_s"}`` (the last turn's reply; earlier turns are asked first, as a conversation).

* LlamaIndex: ``VectorStoreIndex`` over ``SentenceSplitter`` nodes (``chunk_chars``
  characters: its tokenizer counts characters, since tiktoken's vocabulary is a
  download), ``HuggingFaceEmbedding`` on the local MiniLM, ``OpenAILike`` on llmeco's
  server; single questions through ``index.as_query_engine``, conversations through
  ``index.as_chat_engine`` in ``condense_plus_context`` mode (its multi-turn recipe).
* LangChain: ``RecursiveCharacterTextSplitter`` (``chunk_chars``), ``HuggingFaceEmbeddings``,
  ``InMemoryVectorStore`` retriever, ``ChatOpenAI``; a retrieval chain with LangChain's
  standard RAG prompt, and for conversations the history-aware step of its recipe (the model
  rewrites the follow-up as a standalone question before retrieval).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

RAG_PROMPT = (
    "You are an assistant for question-answering tasks. Use the following pieces of "
    "retrieved context to answer the question. If you don't know the answer, say that you "
    "don't know. Use three sentences maximum and keep the answer concise.\n\n{context}"
)
CONDENSE_PROMPT = (
    "Given a chat history and the latest user question which might reference context in the "
    "chat history, formulate a standalone question which can be understood without the chat "
    "history. Do NOT answer the question, just reformulate it if needed and otherwise return "
    "it as is."
)


def llamaindex(job: dict[str, Any]) -> Any:
    """An async ``ask(queries) -> (answer, passages)`` built the LlamaIndex way."""
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.llms import ChatMessage
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.llms.openai_like import OpenAILike

    # LlamaIndex counts tokens with tiktoken, whose vocabulary is a download: count characters
    # instead (the chunk size is in characters for every system here).
    Settings.tokenizer = list
    splitter = SentenceSplitter(
        chunk_size=job["chunk_chars"], chunk_overlap=job["overlap_chars"], tokenizer=list
    )
    embed = HuggingFaceEmbedding(model_name=job["embed_path"], device="cpu")
    llm = OpenAILike(
        model=job["model"],
        api_base=job["base_url"],
        api_key="none",
        is_chat_model=True,
        max_tokens=job["max_tokens"],
        temperature=0.0,
        context_window=job.get("context_window", 8192),
        timeout=900,
    )
    docs = [Document(text=d["text"], metadata={"name": d["name"]}) for d in job["documents"]]
    nodes = splitter.get_nodes_from_documents(docs)
    index = VectorStoreIndex(nodes, embed_model=embed)
    engine = index.as_query_engine(llm=llm, similarity_top_k=job["top_k"])

    async def ask(queries: list[str], history: list[tuple[str, str]]) -> tuple[str, list[str]]:
        if not history:
            r = await engine.aquery(queries[-1])
        else:
            chat = index.as_chat_engine(
                chat_mode="condense_plus_context", llm=llm, similarity_top_k=job["top_k"]
            )
            msgs = []
            for q, a in history:
                msgs += [
                    ChatMessage(role="user", content=q),
                    ChatMessage(role="assistant", content=a),
                ]
            r = await chat.achat(queries[-1], chat_history=msgs)
        return str(r.response or ""), [n.node.get_content() for n in r.source_nodes]

    return ask


def langchain(job: dict[str, Any]) -> Any:
    """An async ``ask(queries) -> (answer, passages)`` built the LangChain way."""
    from langchain_core.documents import Document
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_openai import ChatOpenAI
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=job["chunk_chars"], chunk_overlap=job["overlap_chars"]
    )
    docs = splitter.split_documents(
        [Document(page_content=d["text"], metadata={"name": d["name"]}) for d in job["documents"]]
    )
    embed = HuggingFaceEmbeddings(model_name=job["embed_path"], model_kwargs={"device": "cpu"})
    retriever = InMemoryVectorStore.from_documents(docs, embed).as_retriever(
        search_kwargs={"k": job["top_k"]}
    )
    llm = ChatOpenAI(
        model=job["model"],
        base_url=job["base_url"],
        api_key="none",
        max_tokens=job["max_tokens"],
        temperature=0.0,
        timeout=900,
    )
    qa = (
        ChatPromptTemplate.from_messages(
            [("system", RAG_PROMPT), MessagesPlaceholder("chat_history"), ("human", "{input}")]
        )
        | llm
        | StrOutputParser()
    )
    condense = (
        ChatPromptTemplate.from_messages(
            [("system", CONDENSE_PROMPT), MessagesPlaceholder("chat_history"), ("human", "{input}")]
        )
        | llm
        | StrOutputParser()
    )

    async def ask(queries: list[str], history: list[tuple[str, str]]) -> tuple[str, list[str]]:
        chat_history: list[tuple[str, str]] = []
        for q, a in history:
            chat_history += [("human", q), ("ai", a)]
        question = queries[-1]
        standalone = question
        if chat_history:
            standalone = await condense.ainvoke({"chat_history": chat_history, "input": question})
        found = await retriever.ainvoke(standalone)
        context = "\n\n".join(d.page_content for d in found)
        answer = await qa.ainvoke(
            {"context": context, "chat_history": chat_history, "input": question}
        )
        return answer, [d.page_content for d in found]

    return ask


async def main() -> None:
    """Answer every item of the job on stdin; print one JSON line each."""
    job = json.loads(sys.stdin.read())
    ask = {"llamaindex": llamaindex, "langchain": langchain}[job["framework"]](job)
    sem = asyncio.Semaphore(job.get("concurrency", 4))

    async def one(item: dict[str, Any]) -> dict[str, Any]:
        async with sem:
            history: list[tuple[str, str]] = []
            answer, passages, latency = "", [], 0.0
            for n in range(len(item["queries"])):
                t0 = time.perf_counter()
                answer, passages = await ask(item["queries"][: n + 1], history)
                latency = time.perf_counter() - t0
                history.append((item["queries"][n], answer))
            return {"id": item["id"], "answer": answer, "passages": passages, "latency_s": latency}

    results = await asyncio.gather(*(one(i) for i in job["items"]))
    for r in results:
        print(json.dumps(r, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
