/** The callbacks of the page-table walker ({@code walk_page_range}). */
package dev.offmm.core.walk;
