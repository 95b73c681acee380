# geoproxy's image: the package and its configurations; `docker compose up` runs the fleet of
# docker-compose.yml (the same image runs the demo application instances).
FROM python:3.11-slim
WORKDIR /opt/geoproxy
COPY pyproject.toml README.md ./
COPY geoproxy ./geoproxy
COPY config ./config
RUN pip install --no-cache-dir .
EXPOSE 8080 8404
CMD ["geoproxy", "run", "-c", "/opt/geoproxy/config/compose.cfg"]
