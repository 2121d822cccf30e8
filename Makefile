# Makefile for dh. GNU make. See config.mk for knobs.
include config.mk

ifeq ($(WERROR),1)
WARN += -Werror
CXXWARN += -Werror
endif
ifneq ($(SAN),)
OPT = -O1 -g -fno-omit-frame-pointer -fsanitize=$(SAN) -fno-sanitize-recover=all
endif

ifeq ($(filter clean deps,$(MAKECMDGOALS)),)
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
endif

CPPFLAGS += -D_GNU_SOURCE -DDH_VERSION=\"$(VERSION)\" -Ilib
ALL_CFLAGS = -std=c11 $(WARN) $(OPT) $(PKG_CFLAGS) $(CFLAGS) -MMD -MP
ALL_CXXFLAGS = -std=c++17 $(CXXWARN) $(OPT) $(PKG_CFLAGS) $(CXXFLAGS) -MMD -MP
LDLIBS = $(PKG_LIBS) -lpthread

LIB_SRC = $(sort $(wildcard lib/*.c))
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o)
CMD_SRC = $(sort $(wildcard cmd/dh-*.c))
CMDS = $(CMD_SRC:cmd/%.c=$(BUILD)/bin/%)
CLI_OBJ = $(BUILD)/cmd/cli.o $(BUILD)/cmd/broker_cli.o $(BUILD)/cmd/csv_cli.o $(BUILD)/cmd/progress.o \
	$(BUILD)/cmd/net_cli.o
UNIT_SRC = $(sort $(wildcard tests/unit/test_*.c))
UNITS = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
LIBDH = $(BUILD)/libdh.a
# The shared library (issue 15): the same sources compiled position-independent
# into their own objects, so the commands keep linking the faster non-PIC
# archive.  SONAME_MAJOR changes only when the ABI breaks.
SONAME_MAJOR = 0
LIBDH_SO = $(BUILD)/libdh.so.$(SONAME_MAJOR)
LIB_PIC = $(LIB_SRC:%.c=$(BUILD)/pic/%.o)

all: $(LIBDH) $(LIBDH_SO) $(CMDS)

$(BUILD)/%.o: %.c config.mk
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(LIBDH): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $(LIB_OBJ)

$(BUILD)/pic/%.o: %.c config.mk
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -fPIC -c -o $@ $<

# -z defs: every symbol libdh uses is resolved by the libraries named here
# (sanitizer runtimes are not, so not under SAN).
$(LIBDH_SO): $(LIB_PIC) lib/libdh.map
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -shared -Wl,-soname,libdh.so.$(SONAME_MAJOR) \
		-Wl,--version-script=lib/libdh.map $(if $(SAN),,-Wl,-z,defs) -o $@ $(LIB_PIC) $(LDLIBS)
	ln -sf libdh.so.$(SONAME_MAJOR) $(BUILD)/libdh.so

$(BUILD)/bin/%: $(BUILD)/cmd/%.o $(CLI_OBJ) $(LIBDH)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(CMD_OBJ) $(CLI_OBJ) $(LIBDH) $(LDLIBS) $(CMD_LIBS)

# dh-stat's live views (issue 17): the HTTP server and the terminal library
# are linked into dh-stat only.
STAT_PKGS = libmicrohttpd ncursesw
ifeq ($(filter clean deps,$(MAKECMDGOALS)),)
STAT_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(STAT_PKGS) 2>/dev/null)
STAT_LIBS := $(shell $(PKG_CONFIG) --libs $(STAT_PKGS) 2>/dev/null)
endif
STAT_OBJ = $(BUILD)/cmd/stat_serve.o $(BUILD)/cmd/stat_top.o
$(STAT_OBJ): ALL_CFLAGS += $(STAT_CFLAGS)
$(BUILD)/bin/dh-stat: $(STAT_OBJ)
$(BUILD)/bin/dh-stat: CMD_OBJ = $(STAT_OBJ)
$(BUILD)/bin/dh-stat: CMD_LIBS = $(STAT_LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIBDH)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIBDH) $(LDLIBS)

# The C++ layer (lib/dh.hpp, header-only) is tested by C++ programs that
# tests/run.sh runs with the unit tests (same directory, same TAP).
CXX_TEST_SRC = $(sort $(wildcard tests/cpp/test_*.cpp))
CXX_TESTS = $(CXX_TEST_SRC:tests/cpp/%.cpp=$(BUILD)/tests/%)

$(BUILD)/tests/cpp/%.o: tests/cpp/%.cpp config.mk
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(ALL_CXXFLAGS) -c -o $@ $<

$(CXX_TESTS): $(BUILD)/tests/%: $(BUILD)/tests/cpp/%.o $(LIBDH)
	@mkdir -p $(dir $@)
	$(CXX) $(ALL_CXXFLAGS) $(LDFLAGS) -o $@ $< $(LIBDH) $(LDLIBS)

FUZZ_SRC = $(sort $(wildcard tests/fuzz/fuzz_*.c))
REPLAYS = $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)

# Each fuzz harness is also linked with a plain driver, so `make check`
# replays the saved corpus (regression inputs) without clang or libFuzzer.
$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/replay.o $(LIBDH)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/tests/fuzz/replay.o $(LIBDH) $(LDLIBS)

$(BUILD)/tsan/stress: $(BUILD)/tests/tsan/stress.o $(LIBDH)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIBDH) $(LDLIBS)

# Fault injection needs the real allocator: not built under sanitizers.
ifeq ($(SAN),)
FAULT = $(BUILD)/fault/driver $(BUILD)/fault/inject.so
endif

$(BUILD)/fault/driver: $(BUILD)/tests/fault/driver.o $(LIBDH)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIBDH) $(LDLIBS)

# dlsym results become function pointers here, which ISO C frowns upon.
$(BUILD)/fault/inject.so: tests/fault/inject.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -Wall -Wextra -O1 -fPIC -shared -o $@ $< -ldl

units: $(UNITS) $(CXX_TESTS) $(REPLAYS) $(FAULT)

# A command's own parts beyond its main (issue 13): linked into it alone.
DIAG_OBJ = $(BUILD)/cmd/diagnose_model.o $(BUILD)/cmd/diagnose_print.o
$(BUILD)/bin/dh-diagnose: $(DIAG_OBJ)
$(BUILD)/bin/dh-diagnose: CMD_OBJ += $(DIAG_OBJ)
$(BUILD)/bin/dh-stat: $(BUILD)/cmd/stat_text.o $(BUILD)/cmd/stat_pass.o
$(BUILD)/bin/dh-stat: CMD_OBJ += $(BUILD)/cmd/stat_text.o $(BUILD)/cmd/stat_pass.o
$(BUILD)/bin/dh-validate: $(BUILD)/cmd/validate_print.o
$(BUILD)/bin/dh-validate: CMD_OBJ += $(BUILD)/cmd/validate_print.o
$(BUILD)/bin/dh-read $(BUILD)/bin/dh-write: $(BUILD)/cmd/meta_cli.o
$(BUILD)/bin/dh-read $(BUILD)/bin/dh-write: CMD_OBJ += $(BUILD)/cmd/meta_cli.o
READ_OBJ = $(BUILD)/cmd/read_pump.o $(BUILD)/cmd/read_remote.o
$(BUILD)/bin/dh-read: $(READ_OBJ)
$(BUILD)/bin/dh-read: CMD_OBJ += $(READ_OBJ)
$(BUILD)/bin/dh-write: $(BUILD)/cmd/write_pump.o
$(BUILD)/bin/dh-write: CMD_OBJ += $(BUILD)/cmd/write_pump.o

# The Python package (issue 15): dh._dh, a CPython extension over libdh's
# PIC objects, built with setuptools by the system interpreter (never a
# pyenv shim) into $(BUILD)/python, usable in place with
# PYTHONPATH=$(BUILD)/python.  An instrumented libdh cannot load into an
# uninstrumented interpreter: not built under SAN (tests/run.sh says so).
PYTHON = /usr/bin/python3
PY_PKG = $(BUILD)/python/dh
PY_FILES = $(PY_PKG)/__init__.py $(PY_PKG)/_dh.pyi $(PY_PKG)/py.typed
PY_STAMP = $(BUILD)/python/.built
PY_VERSION = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PY_EXT = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
LIBDH_PIC = $(BUILD)/libdh_pic.a

$(LIBDH_PIC): $(LIB_PIC)
	@rm -f $@
	$(AR) rcs $@ $(LIB_PIC)

$(PY_STAMP): python/dh/_dh.c python/setup.py $(LIBDH_PIC) $(wildcard lib/*.h) config.mk
	@mkdir -p $(BUILD)/python
	@echo "setup.py build_ext -> $(PY_PKG) (log: $(BUILD)/python/build.log)"
	@cd python && DH_TOP=$(CURDIR) DH_LIBDH=$(abspath $(LIBDH_PIC)) DH_VERSION=$(VERSION) \
		DH_LDLIBS="$(LDLIBS)" DH_CFLAGS="$(WARN) $(OPT)" \
		$(PYTHON) setup.py build_ext --force --build-lib $(abspath $(BUILD)/python) \
		--build-temp $(abspath $(BUILD)/python-tmp) >$(abspath $(BUILD)/python/build.log) 2>&1 || \
		{ cat $(abspath $(BUILD)/python/build.log); exit 1; }
	@grep -E -A3 ': (warning|error):' $(BUILD)/python/build.log || :
	@touch $@

$(PY_PKG)/%: python/dh/%
	@mkdir -p $(dir $@)
	cp $< $@

ifeq ($(SAN),)
python: $(PY_STAMP) $(PY_FILES)
else
python:
	@echo "python: not built under SAN (an instrumented libdh cannot load into $(PYTHON))"
endif

# Helper programs of the bats suites (crash points, hostile segments).
HELPER_SRC = $(sort $(wildcard tests/helpers/*.c))
HELPERS = $(HELPER_SRC:tests/helpers/%.c=$(BUILD)/tests/helpers/%)

$(BUILD)/tests/helpers/%: $(BUILD)/tests/helpers/%.o $(LIBDH)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIBDH) $(LDLIBS)

helpers: $(HELPERS)

deps:
	@sh scripts/deps.sh

check: deps
	@$(MAKE) --no-print-directory all units helpers python
	@BUILD=$(BUILD) DH_SAN=$(SAN) sh tests/run.sh

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=address,undefined check

TSAN_COUNT ?= 1000000
tsan: deps
	@$(MAKE) --no-print-directory BUILD=build-tsan CC=clang SAN=thread build-tsan/tsan/stress
	TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan/tsan.supp halt_on_error=1 exitcode=66" \
		build-tsan/tsan/stress $(TSAN_COUNT)

fuzz: deps
	@sh tests/fuzz/run.sh

model:
	@sh tests/model/run.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/demo.sh $(BUILD)/bin

clean:
	rm -rf build build-asan build-tsan build-fuzz build-model

.PHONY: all units helpers python deps check asan tsan fuzz model demo clean
.SECONDARY:

# Header dependencies of every object built so far, wherever it lives.
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Benchmarks (issue 7): `make bench`, or `make bench QUICK=1` for the short run.
# Not installed. Writes the table to stdout and the results to build/bench.json;
# then the Python section (issue 15, bench/python.py) to build/bench-python.json.
QUICK ?=
BENCH_SRC = $(sort $(wildcard bench/*.c))
BENCH = $(BUILD)/bench/dh-bench
# The Eclipse iceoryx peer (bench/iox.c, issue 14) when its C binding is
# installed (Debian: libiceoryx-binding-c-dev; iox-roudi from iceoryx).
# -isystem: its headers are not warning-clean under our flags.
IOX_API = $(lastword $(sort $(wildcard /usr/include/iceoryx/v*/iceoryx_binding_c/api.h)))
BENCH_IOX = $(if $(IOX_API),-DDH_BENCH_IOX -isystem $(patsubst %/iceoryx_binding_c/api.h,%,$(IOX_API)))
BENCH_IOX_LIBS = $(if $(IOX_API),-liceoryx_binding_c)

$(BENCH): $(BENCH_SRC) bench/bench.h $(LIBDH)
	@mkdir -p $(BUILD)/bench
	$(CC) $(CPPFLAGS) $(BENCH_IOX) $(filter-out -MMD -MP,$(ALL_CFLAGS)) $(LDFLAGS) -o $(BENCH) $(BENCH_SRC) \
		$(LIBDH) $(LDLIBS) $(BENCH_IOX_LIBS)

# bench-iox.bats runs dh-bench (not under SAN: iceoryx is not instrumented).
helpers: $(if $(SAN),,$(BENCH))

bench: all python $(BUILD)/tests/helpers/netbench $(BENCH)
	$(BENCH) $(if $(filter-out 0,$(QUICK)),--quick) --bin $(BUILD)/bin --json $(BUILD)/bench.json
	PYTHONPATH=$(BUILD)/python $(PYTHON) bench/python.py $(if $(filter-out 0,$(QUICK)),--quick) \
		--json $(BUILD)/bench-python.json
	@echo "network (issue 16): dh export to a subscriber vs plain ZeroMQ PUSH/PULL, loopback TCP"
	@for s in 64 65536; do \
		n=$$([ $$s = 64 ] && echo $(if $(filter-out 0,$(QUICK)),100000,1000000) || \
			echo $(if $(filter-out 0,$(QUICK)),5000,30000)); \
		$(BUILD)/tests/helpers/netbench zmq $$s $$n && $(BUILD)/tests/helpers/netbench dh $$s $$n && \
		$(BUILD)/tests/helpers/netbench zmqbuf $$s $$n && \
		$(BUILD)/tests/helpers/netbench zmq $$s 2000 1000 && $(BUILD)/tests/helpers/netbench dh $$s 2000 1000 \
		|| exit 1; \
	done

.PHONY: bench

# Install (issue 6): commands, man pages, completions (bash: one copy per
# command name, for lazy loading), and libdh for C programs: the archive,
# the public headers (C, and the C++ layer dh.hpp) under $(INCLUDEDIR)/dh
# and dh.pc.  DESTDIR stages.
MAN_PAGES = $(sort $(wildcard man/*.[1-8]))
PUB_HEADERS = $(filter-out lib/dh_impl.h,$(sort $(wildcard lib/dh.h lib/dh_*.h))) lib/dh.hpp
CMD_NAMES = $(CMDS:$(BUILD)/bin/%=%)
# dh.pc is written at install time (PREFIX may differ from the last run),
# with paths relative to ${prefix} where they are under it, so that
# pkg-config --define-variable=prefix=... relocates them.
pc_rel = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

ifeq ($(SAN),)
PY_INSTALL = python
endif

# systemd units: @BINDIR@ in a *.in is written at install time, like dh.pc.
UNIT_IN = $(sort $(wildcard systemd/*.in))
UNIT_PLAIN = $(filter-out $(UNIT_IN),$(sort $(wildcard systemd/*.service systemd/*.timer)))
UNIT_NAMES = $(notdir $(UNIT_IN:%.in=%) $(UNIT_PLAIN))

install: all $(PY_INSTALL)
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(INCLUDEDIR)/dh $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	install -m 0755 $(CMDS) $(DESTDIR)$(BINDIR)
	install -m 0644 $(LIBDH) $(DESTDIR)$(LIBDIR)
	install -m 0755 $(LIBDH_SO) $(DESTDIR)$(LIBDIR)
	ln -sf libdh.so.$(SONAME_MAJOR) $(DESTDIR)$(LIBDIR)/libdh.so
	install -m 0644 $(PUB_HEADERS) $(DESTDIR)$(INCLUDEDIR)/dh
	sed -i 's|^#define DH_VERSION "[^"]*"$$|#define DH_VERSION "$(VERSION)"|' $(DESTDIR)$(INCLUDEDIR)/dh/dh.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(call pc_rel,$(LIBDIR))|' \
		-e 's|@INCLUDEDIR@|$(call pc_rel,$(INCLUDEDIR))|' -e 's|@VERSION@|$(VERSION)|' \
		dh.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/dh.pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/dh.pc
	for p in $(MAN_PAGES); do \
		s=$${p##*.}; mkdir -p $(DESTDIR)$(MANDIR)/man$$s && \
		install -m 0644 $$p $(DESTDIR)$(MANDIR)/man$$s || exit 1; \
	done
	for c in $(CMD_NAMES); do \
		install -m 0644 completions/dh.bash $(DESTDIR)$(BASHCOMPDIR)/$$c || exit 1; \
	done
	install -m 0644 completions/_dh $(DESTDIR)$(ZSHCOMPDIR)
	mkdir -p $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DHDATADIR)/bats
	for u in $(UNIT_IN); do \
		n=$${u##*/}; sed -e 's|@BINDIR@|$(BINDIR)|g' $$u >$(DESTDIR)$(SYSTEMDUNITDIR)/$${n%.in} && \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$${n%.in} || exit 1; \
	done
	install -m 0644 $(UNIT_PLAIN) $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 0644 bats/dh.bash $(DESTDIR)$(DHDATADIR)/bats
ifeq ($(SAN),)
	mkdir -p $(DESTDIR)$(PYTHONDIR)/dh
	install -m 0644 $(PY_FILES) $(DESTDIR)$(PYTHONDIR)/dh
	install -m 0755 $(PY_PKG)/_dh$(PY_EXT) $(DESTDIR)$(PYTHONDIR)/dh
endif

uninstall:
	rm -f $(CMD_NAMES:%=$(DESTDIR)$(BINDIR)/%) $(CMD_NAMES:%=$(DESTDIR)$(BASHCOMPDIR)/%)
	rm -f $(DESTDIR)$(LIBDIR)/libdh.a $(DESTDIR)$(LIBDIR)/libdh.so.$(SONAME_MAJOR) $(DESTDIR)$(LIBDIR)/libdh.so
	rm -f $(DESTDIR)$(PKGCONFIGDIR)/dh.pc $(DESTDIR)$(ZSHCOMPDIR)/_dh
	rm -f $(UNIT_NAMES:%=$(DESTDIR)$(SYSTEMDUNITDIR)/%) $(DESTDIR)$(DHDATADIR)/bats/dh.bash
	rmdir $(DESTDIR)$(DHDATADIR)/bats $(DESTDIR)$(DHDATADIR) 2>/dev/null || :
	rm -f $(PUB_HEADERS:lib/%=$(DESTDIR)$(INCLUDEDIR)/dh/%)
	rmdir $(DESTDIR)$(INCLUDEDIR)/dh 2>/dev/null || :
	for p in $(MAN_PAGES); do rm -f $(DESTDIR)$(MANDIR)/man$${p##*.}/$${p##*/}; done
	rm -f $(DESTDIR)$(PYTHONDIR)/dh/__init__.py $(DESTDIR)$(PYTHONDIR)/dh/_dh.pyi \
		$(DESTDIR)$(PYTHONDIR)/dh/py.typed $(DESTDIR)$(PYTHONDIR)/dh/_dh$(PY_EXT)
	rm -rf $(DESTDIR)$(PYTHONDIR)/dh/__pycache__
	rmdir $(DESTDIR)$(PYTHONDIR)/dh 2>/dev/null || :

.PHONY: install uninstall

# Debian packages (issue 17): `make deb` copies the tracked tree (with any
# uncommitted edits) to $(DEB_DIR)/src, out of the way of this build/, and
# runs dpkg-buildpackage there; the .debs land in $(DEB_DIR).
DEB_DIR ?= $(BUILD)/deb

deb:
	@sh scripts/deb.sh $(DEB_DIR)

.PHONY: deb
