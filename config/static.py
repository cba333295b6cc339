"""WhiteNoise's middleware, also native under ASGI.

WhiteNoiseMiddleware is synchronous: under uvicorn Django runs it in a thread and sends the
file it answers with (a FileResponse, whose content is a synchronous iterator) by consuming
that iterator in a thread too, warning on every static file that "StreamingHttpResponse must
consume synchronous iterators". Here the middleware is async-capable: on the ASGI handler it
finds and opens the file in a thread and answers with an asynchronous iterator over its
chunks, read in one hop to a thread (as Django's own ASGIStaticFilesHandler does for the
development server; static files are small). Under WSGI (the api process) it is WhiteNoise as is.

With DEBUG the files are served from the app folders (WHITENOISE_USE_FINDERS), so the demo runs
no collectstatic: a STATIC_ROOT that does not exist is then skipped without WhiteNoise's "No
directory at" warning. Without DEBUG it is still a warning (collectstatic was forgotten).
"""

from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, settings=settings) -> None:
        # WhiteNoise adds STATIC_ROOT before it reads WHITENOISE_USE_FINDERS: read it first.
        self.use_finders_pending = getattr(settings, "WHITENOISE_USE_FINDERS", settings.DEBUG)
        super().__init__(get_response, settings=settings)
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def add_files(self, root, prefix=None) -> None:
        if self.use_finders_pending and not Path(root).is_dir():
            return
        super().add_files(root, prefix)

    def __call__(self, request: HttpRequest):
        if self._is_async:
            return self._call_async(request)
        return super().__call__(request)

    async def _call_async(self, request: HttpRequest) -> HttpResponseBase:
        if self.autorefresh:  # DEBUG: looks on the disk each time
            static_file = await sync_to_async(self.find_file)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is None:
            return await self.get_response(request)
        response = await sync_to_async(self.serve)(static_file, request)
        response.streaming_content = _read_in_a_thread(response.streaming_content)
        return response


async def _read_in_a_thread(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in await sync_to_async(list)(chunks):
        yield chunk
