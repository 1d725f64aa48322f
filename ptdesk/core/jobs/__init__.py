"""Batch jobs (`ptdesk run`): code snapshot, record, kept log, ending, and the --like environment.

The kind itself is ptdesk.core.kinds.job; submitting, listing and cancelling: ptdesk.core.job_desk.
"""

JOB_KIND = "job"  # the kind's name (ptdesk.core.kinds.job), as records and labels carry it
