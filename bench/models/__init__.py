"""Model backends behind the judging and generation stages (:mod:`promedical.bench.judging`,
:mod:`promedical.bench.generating`), one module per backend, built by spec in :mod:`.registry`:

- ``hf:PATH_OR_ID``  causal LM judge (:mod:`.causal`) or generator (:mod:`.hf`; :mod:`.vllm` with ``--backend vllm``);
- ``rm:PATH_OR_ID``  reward-model judge (:mod:`.reward`);
- ``openai:MODEL``   any OpenAI-compatible server, judge or generator (:mod:`.api`);
- ``table:PATH``     verdicts and answers fixed in a file (:mod:`.table`);
- ``world``          the synthetic world's ground truth (:mod:`.world`).

Checkpoint loading shared by the local backends is in :mod:`.loading`.
"""
