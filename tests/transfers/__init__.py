"""A third document family, stock transfers, written as another team would write theirs: its
domain (domain.py), its wire models (wire.py) and one registration (family.py). It touches no
part of the kernel, the ports, the processor or the CLI; tests/e2e/test_third_family.py runs it
through the real pipeline."""
