#!/usr/bin/env bash
# Makes sure Postgres and Redis answer on 127.0.0.1 for the test suite: local servers if they are
# installed, else `docker compose up -d postgres redis`, else a clear message.
set -u
PG_HOST=127.0.0.1 PG_PORT=5432 REDIS_PORT=6379

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  for _ in $(seq 1 60); do answers "$1" && return 0; sleep 0.5; done
  return 1
}

start_postgres() {
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start && return 0
  fi
  return 1
}

start_redis() {
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log && return 0
  fi
  return 1
}

compose() {
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    docker compose up -d postgres redis && return 0
  fi
  return 1
}

ok=1
if ! answers "$PG_PORT"; then
  echo "services: Postgres is not answering on $PG_HOST:$PG_PORT; starting it"
  start_postgres || compose || true
  wait_for "$PG_PORT" || { echo "services: could not start Postgres (no local server, no Docker engine)."; ok=0; }
fi
if ! answers "$REDIS_PORT"; then
  echo "services: Redis is not answering on 127.0.0.1:$REDIS_PORT; starting it"
  start_redis || compose || true
  wait_for "$REDIS_PORT" || { echo "services: could not start Redis (no local server, no Docker engine)."; ok=0; }
fi
if [ "$ok" != 1 ]; then
  echo "services: the test suite needs Postgres (user postgres, database test, trust auth) on 127.0.0.1:5432"
  echo "          and Redis on 127.0.0.1:6379. Install them, or a Docker engine for docker-compose.yml,"
  echo "          or point BULKHEAD_TEST_PG / BULKHEAD_TEST_REDIS at running servers."
  exit 1
fi
echo "services: Postgres and Redis are answering"
