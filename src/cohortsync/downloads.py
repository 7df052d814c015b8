"""File downloads as HTTP responses, the same from the API and from the web pages."""

from __future__ import annotations

from fastapi.responses import StreamingResponse

from cohortsync.services.run_members import CsvDownload


def csv_response(download: CsvDownload) -> StreamingResponse:
    """A CSV streamed to the client as an attachment under the download's file name."""
    return StreamingResponse(
        download.lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{download.filename}"'},
    )
