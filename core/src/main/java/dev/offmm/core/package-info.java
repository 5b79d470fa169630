/** Address spaces. */
package dev.offmm.core;
