"""The contract of a study queue: take a study id, and see that some worker runs it, once, to the end."""


class StudyQueue:
    name = "base"

    def submit(self, study_id: str):
        """Hand the stored, queued study to the workers; Unavailable (queue_unavailable) when it cannot be."""
        raise NotImplementedError

    def cancel(self, study_id: str):
        """The study was deleted: stop working on it if this process is (its worker also notices by itself)."""

    def close(self):
        """Stop taking studies; a study in progress is handed back (queued) at its next batch."""
