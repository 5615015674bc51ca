"""Blinded expert adjudication: rating packets out, filled packets in, disagreements to a senior adjudicator,
final labels into a bench file.

The workflow (``docs/adjudication.md`` walks through it with the commands):

1. :func:`~.packets.export_study` turns the policy answers of one or more runs (or a bench file's own candidate
   responses) into **units** — pointwise: does this response meet this criterion; pairwise: which of two
   responses better meets it — assigns each unit to ``overlap`` of the K raters (balanced, seeded), and
   writes one packet per rater as ``.xlsx`` and ``.csv`` plus a **key file** for the study lead.
2. Packets are blind: no model name, path, run id or response id appears in them; each rater gets the rows
   in a different random order; pairwise sides are randomised per row; row ids are opaque. The key maps rows
   back to units and holds an HMAC-SHA256 (per-study secret) over each row's identity and content.
3. :func:`~.workflow.import_study` reads the filled packets, refuses anything that does not match the key (one line per
   problem, nothing written), and writes unblinded long-format ratings, agreement statistics and a
   disagreement queue — a new packet for a senior adjudicator, with its own key.
4. Importing the adjudicator's packet with that key resolves every unit into final labels in bench format;
   :func:`~.workflow.merge_labels` writes them into a bench file.

Design choices: a unit is *agreed* when all its ratings agree and there are at
least ``min_ratings`` (default 2) of them; anything else goes to the adjudicator. Cell text is compared after
normalising line endings and trimming surrounding whitespace (spreadsheet programs change both). The design
(assignment, row order, sides) is reproducible from the seed; the study id and HMAC secret are fresh random
values for every export, so two exports never accept each other's packets.

Modules, each importing only those listed before it:

- :mod:`.errors` — :class:`AdjudicationError` (one line per problem) and the cap on problem lines;
- :mod:`.sources` — what a study rates: :func:`load_runs`, :func:`load_bench_responses`;
- :mod:`.units` — :class:`Unit`, :func:`build_units`, :func:`assign_raters`;
- :mod:`.keys` — the key file (:class:`Study`, :func:`load_key`), HMAC row signatures and tokens;
- :mod:`.packets` — writing packets (``.xlsx``, ``.csv``) and :func:`export_study`;
- :mod:`.ratings` — reading returned packets against the key (:func:`read_packets`), long-format ratings;
- :mod:`.workflow` — :func:`import_study` (ratings, agreement, disagreement queue, final labels) and
  :func:`merge_labels`;
- :mod:`.report` — :func:`judge_agreement` and :func:`format_judge_report` (a judge against the labels and
  the physicians; imports only :mod:`.errors` and :mod:`.sources`).
"""
