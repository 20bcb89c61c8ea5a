# The two commands of the README: `make run` (platform with demo data) and `make test` (the suite).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench worker beat clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "需要 Python 3.11（Spyne 2.14 不支持 3.12）"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

run: $(VENV)/.installed
	DJANGO_DEBUG=1 $(BIN)/python manage.py migrate --noinput
	DJANGO_DEBUG=1 SANDBOX_ENABLED=1 PUBLIC_BASE_URL=http://$(HOST):$(PORT) $(BIN)/python manage.py seed_demo --serve-port $(PORT)
	@echo ""
	@echo "平台地址:       http://$(HOST):$(PORT)/"
	@echo "管理后台:       http://$(HOST):$(PORT)/admin/   (demo / demo-admin-2026)"
	@echo "中心端SOAP:     http://$(HOST):$(PORT)/ws/center?wsdl"
	@echo "渠道REST接口:   http://$(HOST):$(PORT)/api/docs/"
	@echo "接口目录:       http://$(HOST):$(PORT)/interfaces/"
	@echo "健康检查:       http://$(HOST):$(PORT)/healthz"
	@echo ""
	DJANGO_DEBUG=1 SANDBOX_ENABLED=1 PUBLIC_BASE_URL=http://$(HOST):$(PORT) $(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

# Production-style processes (deploy/ has their systemd units): against REDIS_URL; without it they
# use the embedded broker folder under var/, like `make run`.
worker: $(VENV)/.installed
	@test -n "$(REDIS_URL)" || echo "提示：未设置 REDIS_URL，使用 var/ 下的内置代理"
	$(BIN)/celery -A config worker -Q regional -l info

beat: $(VENV)/.installed
	@test -n "$(REDIS_URL)" || echo "提示：未设置 REDIS_URL，使用 var/ 下的内置代理"
	$(BIN)/celery -A config beat -l info

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(BIN)/python -m bench
	$(BIN)/python -m bench.fuzz 60

clean:
	rm -rf $(VENV) var
