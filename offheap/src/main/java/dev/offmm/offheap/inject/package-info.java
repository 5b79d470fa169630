/** Fail points: deterministic or seeded-random failure of each allocation site, for tests and soaks. */
package dev.offmm.offheap.inject;
