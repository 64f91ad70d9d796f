"""The long-running process that receives Elexon IRIS messages and hands them to the workers."""
