# config.mk: knobs for building and installing dh. Override on the command line.
# The one place the version is written: the build passes it to the code
# as -DDH_VERSION; pkg-config, the Python package and the installed dh.h
# take it from here.
VERSION = 0.1.0

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# systemd units (dh-broker.service, dh-validate.service and .timer) and the
# data files (the bats helper library, $(DHDATADIR)/bats/dh.bash).
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
DHDATADIR ?= $(PREFIX)/share/dh
# The Python package (the system interpreter's version: see the Makefile).
PYTHONDIR ?= $(LIBDIR)/python$(PY_VERSION)/dist-packages

CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS = libsodium libzmq libxxhash jansson

# Output directory; `make asan` uses its own.
BUILD ?= build

OPT ?= -O2 -g
WARN = -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
# lib/dh.hpp and its tests (C++17; the library itself stays C11)
CXXWARN = -Wall -Wextra -Wpedantic -Wshadow -Wformat=2
WERROR ?= 0
SAN ?=
