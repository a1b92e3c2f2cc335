"""Run a command with io_uring refused, as Docker's default seccomp profile and
`kernel.io_uring_disabled` refuse it: io_uring_setup, io_uring_enter and io_uring_register fail
with EPERM in the command and everything it starts.

usage: no_io_uring.py COMMAND [ARG ...]   (needs python3-seccomp; run with /usr/bin/python3)
"""
import errno
import os
import sys

import seccomp


def main():
    refuse = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
        refuse.add_rule(seccomp.ERRNO(errno.EPERM), name)
    refuse.load()
    os.execv(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
