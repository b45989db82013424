"""The job pipeline: load, build prompt, call, parse, validate, then record or review.

`run.run_job` executes one attempt; `store` owns every SQL statement that changes a job's
state; `decide` chooses the next step after each LLM call without touching anything.
"""
