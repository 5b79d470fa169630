/**
 * jcstress tests of offmm's concurrency protocols: page-table lock mutual exclusion (inline and
 * debug), the PTE-table install race, two faults on one page, publication of a fully built
 * table, and a stale TLB racing munmap; plus one control test on a deliberately broken lock
 * whose forbidden outcome the harness must see. Each test states its outcomes; anything not
 * listed is FORBIDDEN and fails the build.
 */
package dev.offmm.stress;
