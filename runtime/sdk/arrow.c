/* Placeholder: being written. */
typedef int molt__placeholder_arrow;
