FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY requirements/base.txt requirements/base.txt
RUN pip install -r requirements/base.txt

COPY . .
# collectstatic needs settings; the key is thrown away with this build step.
RUN DJANGO_DEBUG=false DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput

RUN useradd --create-home interlude
USER interlude
EXPOSE 8000
CMD ["uvicorn", "config.asgi:application", "--lifespan", "off", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
