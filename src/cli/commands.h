/* The llmfuse subcommands: thin shells that parse options and call the
 * library. Each returns the process exit status (0 ok, 1 error, 2 warning). */
#ifndef LLMFUSE_CLI_COMMANDS_H
#define LLMFUSE_CLI_COMMANDS_H

enum { LF_EXIT_OK = 0, LF_EXIT_ERROR = 1, LF_EXIT_WARNING = 2 };

int lf_command_xml(int argc, char **argv);
int lf_command_tokenizer(int argc, char **argv);
int lf_command_model(int argc, char **argv);
int lf_command_loopback(int argc, char **argv);
int lf_command_gen(int argc, char **argv);
int lf_command_train(int argc, char **argv);
int lf_command_eval(int argc, char **argv);
int lf_command_mkfs(int argc, char **argv);
int lf_command_mount(int argc, char **argv);
int lf_command_unpack(int argc, char **argv);
int lf_command_ls(int argc, char **argv);
int lf_command_cat(int argc, char **argv);
int lf_command_fsck(int argc, char **argv);
int lf_command_info(int argc, char **argv);

#endif
