/* convert-profile: turn the profile a HaLVM guest writes to its console
 * (lines "PROF <cost centre> <ticks>") into a GHC-style .prof summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	char line[512], name[256];
	unsigned long ticks, total = 0;
	FILE *in = argc > 1 ? fopen(argv[1], "r") : stdin;

	if (!in) {
		perror("convert-profile");
		return 1;
	}
	printf("\tTotal time profile (HaLVM)\n\nCOST CENTRE\tticks\n");
	while (fgets(line, sizeof line, in)) {
		if (sscanf(line, "PROF %255s %lu", name, &ticks) == 2) {
			printf("%s\t%lu\n", name, ticks);
			total += ticks;
		}
	}
	printf("\ntotal ticks\t%lu\n", total);
	return 0;
}
