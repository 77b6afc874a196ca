/* The XML state: the seed's byte-exact form, canonical round trips, the
 * parser's refusals with their diagnostics, and base64. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/base64.h"
#include "fs/xml.h"

/* 2025-01-01T00:00:00Z, the seed's timestamps. */
#define SEED_EPOCH INT64_C(1735689600)

/* Attributes every node element shares, canonical order, root:root. */
#define NODE(path, name, mode, mtime)                                                 \
    "path=\"" path "\" name=\"" name "\" mode=\"" mode "\" owner=\"root\" group=\"root\" " \
    "mtime=\"" mtime "\""
#define T0 "2025-01-01T00:00:00"
#define ROOT_OPEN "<filesystem><directory " NODE("/", "/", "755", T0) ">"
#define ROOT_CLOSE "</directory></filesystem>"
#define ROOT_WITH(children) ROOT_OPEN children ROOT_CLOSE
#define FILE_ABC(path, name) \
    "<file " NODE(path, name, "644", T0) " size=\"3\"><body>abc</body></file>"

#define SEED_DOCUMENT                                                                      \
    "<filesystem><directory path=\"/\" name=\"/\" mode=\"755\" owner=\"root\" "           \
    "group=\"root\" mtime=\"2025-01-01T00:00:00\"><directory path=\"testdir\" "            \
    "name=\"testdir\" mode=\"755\" owner=\"root\" group=\"root\" "                          \
    "mtime=\"2025-01-01T00:00:00\" /><file path=\"testfile.txt\" name=\"testfile.txt\" "    \
    "mode=\"644\" owner=\"root\" group=\"root\" mtime=\"2025-01-01T00:00:01\" size=\"14\">" \
    "<body>hello llmfuse\n</body></file></directory></filesystem>"

static lf_node_info node_info(lf_node_type type, uint32_t permissions, int64_t mtime)
{
    struct timespec time = {.tv_sec = mtime};
    return (lf_node_info){.type = type, .permissions = permissions, .owner = "root",
                          .group = "root", .atime = time, .mtime = time, .ctime = time};
}

static lf_node *add(lf_tree *tree, lf_node *parent, const char *name, lf_node_info info)
{
    lf_node *node;
    assert_int_equal(lf_tree_add_node(tree, parent, name, &info, &node), 0);
    return node;
}

static lf_node *add_file(lf_tree *tree, lf_node *parent, const char *name, const void *content,
                         size_t size)
{
    lf_node *file = add(tree, parent, name, node_info(LF_NODE_FILE, 0644, SEED_EPOCH));
    if (size)
        assert_int_equal(lf_node_write(file, content, size, 0), (int64_t)size);
    return file;
}

/* A tree holding only a root directory (mode 755, root:root, T0). */
static lf_tree *new_rooted_tree(lf_node **root)
{
    lf_tree *tree = lf_tree_new();
    assert_non_null(tree);
    lf_node_info info = node_info(LF_NODE_DIRECTORY, 0755, SEED_EPOCH);
    assert_int_equal(lf_tree_make_root(tree, &info, root), 0);
    return tree;
}

/* Writes tree and checks the status; returns the document (caller frees). */
static char *write_tree(const lf_tree *tree, unsigned flags)
{
    lf_buffer out = {0};
    lf_diagnostic diag = {0};
    int64_t status = lf_xml_write(tree, flags, &out, &diag);
    if (status < 0)
        fail_msg("lf_xml_write: %s: %s", lf_error_name(status), diag.message);
    assert_int_equal(status, out.length);
    char *text = strdup(lf_buffer_string(&out));
    lf_buffer_free(&out);
    return text;
}

static lf_tree *parse_ok(const char *document, unsigned flags)
{
    lf_tree *tree = NULL;
    lf_diagnostic diag = {0};
    int64_t status = lf_xml_parse(document, strlen(document), flags, &tree, &diag);
    if (status != 0)
        fail_msg("lf_xml_parse(%s): %s: %s", document, lf_error_name(status), diag.message);
    assert_non_null(tree);
    return tree;
}

/* parse -> write must give `canonical`. */
static void assert_canonicalises(const char *document, unsigned flags, const char *canonical)
{
    lf_tree *tree = parse_ok(document, flags);
    char *written = write_tree(tree, flags);
    assert_string_equal(written, canonical);
    free(written);
    lf_tree_free(tree);
}

/* --- The seed's document --- */

static void test_seed_tree_is_394_bytes(void **state)
{
    (void)state;
    lf_node *root;
    lf_tree *tree = new_rooted_tree(&root);
    add(tree, root, "testdir", node_info(LF_NODE_DIRECTORY, 0755, SEED_EPOCH));
    lf_node *file = add(tree, root, "testfile.txt", node_info(LF_NODE_FILE, 0644, SEED_EPOCH + 1));
    assert_int_equal(lf_node_write(file, "hello llmfuse\n", 14, 0), 14);

    char *document = write_tree(tree, 0);
    assert_int_equal(strlen(document), 394);
    assert_string_equal(document, SEED_DOCUMENT);
    free(document);
    lf_tree_free(tree);
}

/* The seed's blog shows states indented; they mean the same tree. */
static void test_seed_pretty_printed(void **state)
{
    (void)state;
    static const char pretty[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<filesystem>\n"
        "  <directory path=\"/\" name=\"/\" mode=\"755\" owner=\"root\" group=\"root\"\n"
        "mtime=\"2025-01-01T00:00:00\">\n"
        "    <directory path=\"testdir\" name=\"testdir\" mode=\"755\" owner=\"root\" "
        "group=\"root\" mtime=\"2025-01-01T00:00:00\" />\n"
        "    <file path=\"testfile.txt\" name=\"testfile.txt\" mode=\"644\" owner=\"root\"\n"
        "group=\"root\" mtime=\"2025-01-01T00:00:01\" size=\"14\">\n"
        "      <body>hello llmfuse\n"
        "</body>\n"
        "    </file>\n"
        "  </directory>\n"
        "</filesystem>\n";
    assert_canonicalises(pretty, 0, SEED_DOCUMENT);
}

static void test_attribute_order_and_quotes_are_free(void **state)
{
    (void)state;
    assert_canonicalises(
        "<filesystem><directory mtime='2025-01-01T00:00:00' group='root' owner='root' "
        "mode='0755' name='/' path='/'><file size='3' mtime='2025-01-01T00:00:00' group='root' "
        "owner='root' mode='00644' name='f' path='f'><body>abc</body></file></directory>"
        "</filesystem>",
        0, ROOT_OPEN FILE_ABC("f", "f") ROOT_CLOSE);
}

/* The canonical form is UTF-8; other encodings expat knows carry the same
 * characters. */
static void test_declared_encodings(void **state)
{
    (void)state;
    assert_canonicalises("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>" ROOT_WITH(
                             FILE_ABC("caf\xe9", "caf\xe9")),
                         0, ROOT_WITH(FILE_ABC("caf\xc3\xa9", "caf\xc3\xa9")));
    assert_canonicalises("<?xml version='1.0' encoding='utf-8' standalone='yes'?>\n"
                         "<filesystem />\n",
                         0, "<filesystem />");
    /* CDATA sections are text like any other */
    assert_canonicalises(ROOT_WITH("<file " NODE("f", "f", "644", T0) " size=\"4\"><body>"
                                   "<![CDATA[<a>]]>&amp;<![CDATA[]]></body></file>"),
                         0,
                         ROOT_WITH("<file " NODE("f", "f", "644", T0)
                                   " size=\"4\"><body>&lt;a&gt;&amp;</body></file>"));
}

/* Entries keep the document's order; LF_XML_SORTED writes them bytewise. */
static void test_children_keep_document_order(void **state)
{
    (void)state;
    const char *document = ROOT_OPEN FILE_ABC("\xc3\xa9", "\xc3\xa9") FILE_ABC("a", "a")
        FILE_ABC("B", "B") ROOT_CLOSE;
    assert_canonicalises(document, 0, document);
    assert_canonicalises(document, LF_XML_SORTED,
                         ROOT_OPEN FILE_ABC("B", "B") FILE_ABC("a", "a")
                             FILE_ABC("\xc3\xa9", "\xc3\xa9") ROOT_CLOSE);
}

/* --- Canonical documents are fixed points --- */

static const char *const canonical_documents[] = {
    "<filesystem />",
    "<filesystem><directory " NODE("/", "/", "0", "0001-01-01T00:00:00") " /></filesystem>",
    /* escaping in attributes: & < > " and the whitespace ElementTree protects */
    ROOT_OPEN FILE_ABC("a&amp;b&lt;c&gt;&quot;d'e", "a&amp;b&lt;c&gt;&quot;d'e")
        FILE_ABC("new&#10;line&#09;tab&#13;cr", "new&#10;line&#09;tab&#13;cr") ROOT_CLOSE,
    /* unicode names, nested paths */
    ROOT_OPEN "<directory " NODE("\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac", "700",
                                 "9999-12-31T23:59:59") ">"
    "<directory " NODE("\xe6\x97\xa5\xe6\x9c\xac/s\xc3\xbc\xc3\x9f", "s\xc3\xbc\xc3\x9f", "1777",
                       "2000-02-29T12:34:56") ">" FILE_ABC(
        "\xe6\x97\xa5\xe6\x9c\xac/s\xc3\xbc\xc3\x9f/\xf0\x9f\x98\x80",
        "\xf0\x9f\x98\x80") "</directory></directory>" ROOT_CLOSE,
    /* text bodies: markup characters, "]]>", tabs, non-ASCII */
    ROOT_OPEN "<file " NODE("t", "t", "644", T0) " size=\"21\"><body>a &amp; b &lt;c&gt; ]]&gt; "
              "\"q\"\t\xc3\xa9\n</body></file>" ROOT_CLOSE,
    /* base64 bodies: CR, NUL, invalid UTF-8 */
    ROOT_OPEN "<file " NODE("b", "b", "600", T0) " size=\"4\"><body encoding=\"base64\">YQ1iCg=="
              "</body></file><file " NODE("n", "n", "600", T0) " size=\"1\"><body "
              "encoding=\"base64\">AA==</body></file><file " NODE("x", "x", "600", T0)
              " size=\"3\"><body encoding=\"base64\">/wEC</body></file>" ROOT_CLOSE,
    /* empty body, empty directory, special modes */
    ROOT_OPEN "<directory " NODE("d", "d", "2775", T0) " /><file " NODE("e", "e", "7777", T0)
              " size=\"0\"><body /></file>" ROOT_CLOSE,
    /* symlinks, with escaped targets */
    ROOT_OPEN "<symlink " NODE("l", "l", "777", T0) " target=\"../a &amp; &lt;b&gt;/&quot;c&quot;\" />"
              "<symlink " NODE("m", "m", "777", T0) " target=\"/abs&#10;olute\" />" ROOT_CLOSE,
    /* owners the system lacks keep their names; numeric ids stay numeric */
    ("<filesystem><directory path=\"/\" name=\"/\" mode=\"755\" owner=\"no-such-user\" "
     "group=\"4242\" mtime=\"1970-01-01T00:00:00\" /></filesystem>"),
};

static void test_canonical_documents_are_fixed_points(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof canonical_documents / sizeof canonical_documents[0]; i++)
        assert_canonicalises(canonical_documents[i], 0, canonical_documents[i]);
}

/* --- What the writer chooses --- */

static void test_bodies_that_are_not_xml_text_go_base64(void **state)
{
    (void)state;
    static const struct {
        const char *content;
        size_t size;
        const char *body;
    } cases[] = {
        {"plain\ttext\n", 11, "<body>plain\ttext\n</body>"},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "<body>\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80</body>"},
        {"\xef\xbf\xbd", 3, "<body>\xef\xbf\xbd</body>"},            /* U+FFFD is a Char */
        {"a\r\nb", 4, "<body encoding=\"base64\">YQ0KYg==</body>"},     /* parsers eat CR */
        {"a\0b", 3, "<body encoding=\"base64\">YQBi</body>"},
        {"\x01", 1, "<body encoding=\"base64\">AQ==</body>"},          /* C0 control */
        {"\xff", 1, "<body encoding=\"base64\">/w==</body>"},          /* not UTF-8 */
        {"\xc3", 1, "<body encoding=\"base64\">ww==</body>"},          /* truncated */
        {"\xc0\xaf", 2, "<body encoding=\"base64\">wK8=</body>"},      /* overlong */
        {"\xed\xa0\x80", 3, "<body encoding=\"base64\">7aCA</body>"},  /* surrogate */
        {"\xef\xbf\xbe", 3, "<body encoding=\"base64\">77++</body>"},  /* U+FFFE */
        {"\xf4\x90\x80\x80", 4, "<body encoding=\"base64\">9JCAgA==</body>"}, /* > U+10FFFF */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lf_node *root;
        lf_tree *tree = new_rooted_tree(&root);
        add_file(tree, root, "f", cases[i].content, cases[i].size);
        char *document = write_tree(tree, 0);
        if (!strstr(document, cases[i].body))
            fail_msg("case %zu: %s lacks %s", i, document, cases[i].body);
        /* and the content comes back */
        lf_tree *again = parse_ok(document, 0);
        char content[16] = {0};
        lf_node *file = lf_node_lookup(lf_tree_root(again), "f");
        assert_int_equal(lf_node_read(file, content, sizeof content, 0), cases[i].size);
        assert_memory_equal(content, cases[i].content, cases[i].size);
        lf_tree_free(again);
        free(document);
        lf_tree_free(tree);
    }
}

static void test_writer_refuses_unrepresentable_values(void **state)
{
    (void)state;
    static const struct {
        const char *name, *owner, *target;
        int64_t mtime;
        const char *message;
    } cases[] = {
        {"ctl\x01", "root", NULL, SEED_EPOCH, "path of \"d/ctl\x01\" is not UTF-8 text"},
        {"bad\xff", "root", NULL, SEED_EPOCH, "path of \"d/bad\xff\""},
        {"ok", "r\x1bt", NULL, SEED_EPOCH, "owner of \"d/ok\""},
        {"ok", "root", "\xc3", SEED_EPOCH, "target of \"d/ok\""},
        {"ok", "root", "es\x1b", SEED_EPOCH, "target of \"d/ok\""},
        {"ok", "root", "", SEED_EPOCH, "empty target of symlink \"d/ok\""},
        {"ok", "root", NULL, INT64_C(-62135596801), "mtime of \"d/ok\""},
        {"ok", "root", NULL, INT64_C(253402300800), "outside years 0001..9999"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lf_node *root;
        lf_tree *tree = new_rooted_tree(&root);
        lf_node *d = add(tree, root, "d", node_info(LF_NODE_DIRECTORY, 0755, SEED_EPOCH));
        lf_node_info info = node_info(cases[i].target ? LF_NODE_SYMLINK : LF_NODE_FILE, 0644,
                                      cases[i].mtime);
        info.owner = cases[i].owner;
        info.symlink_target = cases[i].target;
        add(tree, d, cases[i].name, info);
        lf_buffer out = {0};
        assert_int_equal(lf_buffer_append_string(&out, "keep"), 0);
        lf_diagnostic diag = {0};
        assert_int_equal(lf_xml_write(tree, 0, &out, &diag), -LF_EUNREPRESENTABLE);
        assert_int_equal(out.length, 4); /* nothing half-written */
        if (!strstr(diag.message, cases[i].message))
            fail_msg("case %zu: diagnostic \"%s\" lacks \"%s\"", i, diag.message,
                     cases[i].message);
        lf_buffer_free(&out);
        lf_tree_free(tree);
    }
}

static void test_mtime_range_and_calendar(void **state)
{
    (void)state;
    static const struct {
        int64_t seconds;
        const char *text;
    } cases[] = {
        {INT64_C(-62135596800), "0001-01-01T00:00:00"},
        {INT64_C(253402300799), "9999-12-31T23:59:59"},
        {-1, "1969-12-31T23:59:59"},
        {0, "1970-01-01T00:00:00"},
        {INT64_C(951782400), "2000-02-29T00:00:00"},
        {INT64_C(-2203891200), "1900-03-01T00:00:00"},
        {INT64_C(4107542399), "2100-02-28T23:59:59"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lf_tree *tree = lf_tree_new();
        lf_node_info info = node_info(LF_NODE_DIRECTORY, 0755, cases[i].seconds);
        info.mtime.tv_nsec = 999999999; /* dropped, never rounded up */
        assert_int_equal(lf_tree_make_root(tree, &info, NULL), 0);
        char *document = write_tree(tree, 0);
        if (!strstr(document, cases[i].text))
            fail_msg("%s lacks %s", document, cases[i].text);
        lf_tree *again = parse_ok(document, 0);
        lf_node_info parsed;
        lf_node_get_info(lf_tree_root(again), &parsed);
        assert_int_equal(parsed.mtime.tv_sec, cases[i].seconds);
        assert_int_equal(parsed.mtime.tv_nsec, 0);
        lf_tree_free(again);
        free(document);
        lf_tree_free(tree);
    }
}

/* --- What the parser builds --- */

static void test_parsed_attributes(void **state)
{
    (void)state;
    lf_tree *tree = parse_ok(
        "<filesystem><directory path=\"/\" name=\"/\" mode=\"1755\" owner=\"root\" "
        "group=\"root\" mtime=\"2025-01-01T00:00:00\"><file path=\"f\" name=\"f\" mode=\"640\" "
        "owner=\"no-such-user-xyz\" group=\"4242\" mtime=\"2025-01-01T00:00:01\" size=\"3\">"
        "<body>abc</body></file><symlink path=\"l\" name=\"l\" mode=\"777\" owner=\"root\" "
        "group=\"no-such-group-xyz\" mtime=\"2025-01-01T00:00:02\" target=\"f\" /></directory>"
        "</filesystem>",
        0);
    lf_node *root = lf_tree_root(tree);
    lf_node_info info;
    lf_node_get_info(root, &info);
    assert_int_equal(info.type, LF_NODE_DIRECTORY);
    assert_int_equal(info.permissions, 01755);
    assert_int_equal(info.uid, 0);
    assert_int_equal(info.gid, 0);

    lf_node_get_info(lf_node_lookup(root, "f"), &info);
    assert_int_equal(info.type, LF_NODE_FILE);
    assert_int_equal(info.permissions, 0640);
    assert_string_equal(info.owner, "no-such-user-xyz");
    assert_int_equal(info.uid, 65534);
    assert_string_equal(info.group, "4242");
    assert_int_equal(info.gid, 4242);
    assert_int_equal(info.size, 3);
    assert_int_equal(info.mtime.tv_sec, SEED_EPOCH + 1);
    assert_int_equal(info.atime.tv_sec, SEED_EPOCH + 1);
    assert_int_equal(info.ctime.tv_sec, SEED_EPOCH + 1);

    lf_node_get_info(lf_node_lookup(root, "l"), &info);
    assert_int_equal(info.type, LF_NODE_SYMLINK);
    assert_string_equal(info.symlink_target, "f");
    assert_string_equal(info.group, "no-such-group-xyz");
    assert_int_equal(info.gid, 65534);
    lf_tree_free(tree);
}

static void test_without_bodies(void **state)
{
    (void)state;
    static const char metadata[] =
        ROOT_OPEN "<file " NODE("big", "big", "644", T0) " size=\"1000000\" />" ROOT_CLOSE;
    assert_canonicalises(metadata, LF_XML_WITHOUT_BODIES, metadata);

    lf_tree *tree = parse_ok(metadata, LF_XML_WITHOUT_BODIES);
    lf_node *file = lf_node_lookup(lf_tree_root(tree), "big");
    char tail[4] = {1, 1, 1, 1};
    assert_int_equal(lf_node_read(file, tail, sizeof tail, 999998), 2);
    assert_memory_equal(tail, "\0\0", 2);
    lf_tree_free(tree);

    /* a body is still welcome, and still has to match */
    assert_canonicalises(ROOT_OPEN FILE_ABC("f", "f") ROOT_CLOSE, LF_XML_WITHOUT_BODIES,
                         ROOT_OPEN "<file " NODE("f", "f", "644", T0) " size=\"3\" />" ROOT_CLOSE);
}

/* Depth must not reach the C stack in either direction. */
static void test_deep_tree(void **state)
{
    (void)state;
    enum { DEPTH = 2000 };
    lf_buffer document = {0}, path = {0};
    assert_int_equal(lf_buffer_append_string(&document, ROOT_OPEN), 0);
    for (int i = 0; i < DEPTH; i++) {
        assert_int_equal(lf_buffer_append_string(&path, i ? "/d" : "d"), 0);
        assert_int_equal(lf_buffer_printf(&document, "<directory " NODE("%s", "d", "755", T0) "%s",
                                          lf_buffer_string(&path), i + 1 < DEPTH ? ">" : " />"),
                         0);
    }
    for (int i = 1; i < DEPTH; i++)
        assert_int_equal(lf_buffer_append_string(&document, "</directory>"), 0);
    assert_int_equal(lf_buffer_append_string(&document, ROOT_CLOSE), 0);
    assert_canonicalises(lf_buffer_string(&document), 0, lf_buffer_string(&document));
    lf_buffer_free(&document);
    lf_buffer_free(&path);
}

/* --- Refusals --- */

#define DIR_ATTRS(path, name) NODE(path, name, "755", T0)
#define FILE_SIZED(size, body) \
    "<file " NODE("f", "f", "644", T0) " size=\"" size "\">" body "</file>"
#define WITH_MODE(mode) ROOT_WITH("<directory " NODE("d", "d", mode, T0) " />")
#define WITH_MTIME(mtime) ROOT_WITH("<directory " NODE("d", "d", "755", mtime) " />")
#define WITH_SIZE(size) ROOT_WITH(FILE_SIZED(size, "<body>abc</body>"))

static const struct malformed {
    const char *document;
    unsigned flags;
    int64_t status;
    const char *message;
} malformed_documents[] = {
    /* not XML at all */
    {"", 0, -LF_EFORMAT, "1:1: XML error: no element found"},
    {"<filesystem>", 0, -LF_EFORMAT, "XML error: no element found"},
    {"<filesystem></directory>", 0, -LF_EFORMAT, "mismatched tag"},
    {"<filesystem />junk", 0, -LF_EFORMAT, "junk after document element"},
    {"<filesystem a=\"1\" a=\"2\"/>", 0, -LF_EFORMAT, "duplicate attribute"},
    {ROOT_WITH("<file " NODE("f", "f", "644", T0) " size=\"1\"><body>\xff</body></file>"), 0,
     -LF_EFORMAT, "not well-formed"},
    {ROOT_WITH(FILE_SIZED("1", "<body>&#0;</body>")), 0, -LF_EFORMAT,
     "reference to invalid character number"},
    {ROOT_WITH(FILE_SIZED("1", "<body>&nbsp;</body>")), 0, -LF_EFORMAT, "undefined entity"},
    {"<?xml version=\"1.0\" encoding=\"EBCDIC\"?><filesystem />", 0, -LF_EFORMAT,
     "XML error: unknown encoding"},
    /* what the format leaves out */
    {"<!DOCTYPE filesystem><filesystem />", 0, -LF_EFORMAT, "DOCTYPE is not allowed"},
    {"<!DOCTYPE f [<!ENTITY a \"aaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;\">]>"
     "<filesystem>&b;</filesystem>",
     0, -LF_EFORMAT, "DOCTYPE is not allowed"},
    {"<filesystem><!-- note --></filesystem>", 0, -LF_EFORMAT, "comments are not allowed"},
    {"<filesystem><?php echo 1?></filesystem>", 0, -LF_EFORMAT,
     "processing instruction <?php?> not allowed"},
    /* elements and attributes */
    {"<fs />", 0, -LF_EFORMAT, "the document element is <fs>, not <filesystem>"},
    {"<directory " DIR_ATTRS("/", "/") " />", 0, -LF_EFORMAT, "not <filesystem>"},
    {"<filesystem version=\"2\" />", 0, -LF_EFORMAT, "unknown attribute \"version\" on <filesystem>"},
    {ROOT_WITH("<dir " DIR_ATTRS("d", "d") " />"), 0, -LF_EFORMAT, "unknown element <dir>"},
    {ROOT_WITH("<directory " DIR_ATTRS("d", "d") " size=\"0\" />"), 0, -LF_EFORMAT,
     "unknown attribute \"size\" on <directory> (path \"d\")"},
    {ROOT_WITH("<directory path=\"d\" name=\"d\" owner=\"root\" group=\"root\" mtime=\"" T0 "\" />"),
     0, -LF_EFORMAT, "<directory> lacks the required attribute \"mode\" (path \"d\")"},
    {ROOT_WITH("<file " NODE("f", "f", "644", T0) "><body /></file>"), 0, -LF_EFORMAT,
     "<file> lacks the required attribute \"size\""},
    {ROOT_WITH("<symlink " NODE("l", "l", "777", T0) " />"), 0, -LF_EFORMAT,
     "<symlink> lacks the required attribute \"target\""},
    {ROOT_WITH("<symlink " NODE("l", "l", "777", T0) " target=\"\" />"), 0, -LF_EFORMAT,
     "empty symlink target (path \"l\")"},
    {"<filesystem><filesystem /></filesystem>", 0, -LF_EFORMAT, "<filesystem> inside <filesystem>"},
    /* the root */
    {ROOT_CLOSE, 0, -LF_EFORMAT, "not well-formed"},
    {"<filesystem><directory " DIR_ATTRS("/", "/") " /><directory " DIR_ATTRS("/", "/")
     " /></filesystem>",
     0, -LF_EFORMAT, "more than one root directory"},
    {"<filesystem><file " NODE("/", "/", "644", T0) " size=\"0\"><body /></file></filesystem>", 0,
     -LF_EFORMAT, "the root must be a <directory>"},
    {"<filesystem><directory " DIR_ATTRS("", "/") " /></filesystem>", 0, -LF_EFORMAT,
     "the root directory must have path \"/\" and name \"/\""},
    {"<filesystem><directory " DIR_ATTRS("/", "root") " /></filesystem>", 0, -LF_EFORMAT,
     "must have path \"/\""},
    /* paths and names */
    {ROOT_WITH("<directory " DIR_ATTRS("/d", "d") " />"), 0, -LF_EFORMAT,
     "path does not match the element's place: \"d\" expected (path \"/d\")"},
    {ROOT_WITH("<directory " DIR_ATTRS("d", "d") "><directory " DIR_ATTRS("e", "e")
               " /></directory>"),
     0, -LF_EFORMAT, "\"d/e\" expected"},
    {ROOT_WITH("<directory " DIR_ATTRS("", "") " />"), 0, -LF_EFORMAT, "invalid name \"\""},
    {ROOT_WITH("<directory " DIR_ATTRS(".", ".") " />"), 0, -LF_EFORMAT, "invalid name \".\""},
    {ROOT_WITH("<directory " DIR_ATTRS("..", "..") " />"), 0, -LF_EFORMAT, "invalid name \"..\""},
    {ROOT_WITH("<directory " DIR_ATTRS("a/b", "a/b") " />"), 0, -LF_EFORMAT,
     "invalid name \"a/b\""},
    {ROOT_WITH("<directory "
               DIR_ATTRS("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx") " />"),
     0, -LF_EFORMAT, "name longer than 255 bytes"},
    {ROOT_WITH(FILE_ABC("a", "a") FILE_ABC("a", "a")), 0, -LF_EFORMAT,
     "duplicate name \"a\" in a directory (path \"a\")"},
    /* structure */
    {ROOT_WITH("<file " NODE("f", "f", "644", T0) " size=\"0\"><body /><directory "
               DIR_ATTRS("f/d", "d") " /></file>"),
     0, -LF_EFORMAT, "<directory> inside <file>, which has no children"},
    {ROOT_WITH("<symlink " NODE("l", "l", "777", T0) " target=\"x\">" FILE_ABC("l/f", "f")
               "</symlink>"),
     0, -LF_EFORMAT, "<file> inside <symlink>, which has no children"},
    {ROOT_WITH("<directory " DIR_ATTRS("d", "d") ">hello</directory>"), 0, -LF_EFORMAT,
     "text outside <body>, inside <directory> (path \"d\")"},
    {"<filesystem>hello</filesystem>", 0, -LF_EFORMAT, "text outside <body>, inside <filesystem>"},
    {ROOT_WITH(FILE_SIZED("3", "x<body>abc</body>")), 0, -LF_EFORMAT, "text outside <body>"},
    {ROOT_WITH("<body>abc</body>"), 0, -LF_EFORMAT, "<body> outside a <file>"},
    {ROOT_WITH(FILE_SIZED("3", "")), 0, -LF_EFORMAT, "<file> without a <body> (path \"f\")"},
    {ROOT_WITH(FILE_SIZED("3", "<body>abc</body><body>abc</body>")), 0, -LF_EFORMAT,
     "a second <body> in a <file>"},
    {ROOT_WITH(FILE_SIZED("3", "<body>abc<body /></body>")), 0, -LF_EFORMAT,
     "<body> inside <body>, which holds only text"},
    {ROOT_WITH(FILE_SIZED("3", "<body><b>abc</b></body>")), 0, -LF_EFORMAT, "unknown element <b>"},
    {ROOT_WITH(FILE_SIZED("3", "<body encoding=\"hex\">616263</body>")), 0, -LF_EFORMAT,
     "unknown body encoding \"hex\""},
    {ROOT_WITH(FILE_SIZED("3", "<body charset=\"utf-8\">abc</body>")), 0, -LF_EFORMAT,
     "unknown attribute \"charset\" on <body>"},
    {ROOT_WITH(FILE_SIZED("3", "<body encoding=\"base64\">YWJ</body>")), 0, -LF_EFORMAT,
     "invalid base64 in <body>"},
    {ROOT_WITH(FILE_SIZED("3", "<body encoding=\"base64\">YWJj\n</body>")), 0, -LF_EFORMAT,
     "invalid base64"},
    {ROOT_WITH(FILE_SIZED("4", "<body>abc</body>")), 0, -LF_EFORMAT,
     "size=\"4\" but the body has 3 bytes (path \"f\")"},
    {ROOT_WITH(FILE_SIZED("2", "<body encoding=\"base64\">YWJj</body>")), 0, -LF_EFORMAT,
     "size=\"2\" but the body has 3 bytes"},
    /* attribute values */
    {WITH_MODE(""), 0, -LF_EFORMAT, "bad mode \"\""},
    {WITH_MODE("8"), 0, -LF_EFORMAT, "bad mode \"8\""},
    {WITH_MODE("10000"), 0, -LF_EFORMAT, "bad mode \"10000\""},
    {WITH_MODE("-1"), 0, -LF_EFORMAT, "bad mode \"-1\""},
    {WITH_MODE("0x1ff"), 0, -LF_EFORMAT, "bad mode \"0x1ff\""},
    {WITH_MODE("00000000000000000000000000000000000000010000"), 0, -LF_EFORMAT, "bad mode"},
    {WITH_MTIME("2025-01-01 00:00:00"), 0, -LF_EFORMAT, "bad mtime \"2025-01-01 00:00:00\""},
    {WITH_MTIME("2025-01-01T00:00:00Z"), 0, -LF_EFORMAT, "bad mtime"},
    {WITH_MTIME("2025-1-01T00:00:00"), 0, -LF_EFORMAT, "bad mtime"},
    {WITH_MTIME("0000-01-01T00:00:00"), 0, -LF_EFORMAT, "bad mtime"},
    {WITH_MTIME("2025-00-01T00:00:00"), 0, -LF_EFORMAT, "bad mtime"},
    {WITH_MTIME("2025-13-01T00:00:00"), 0, -LF_EFORMAT, "bad mtime"},
    {WITH_MTIME("2025-04-31T00:00:00"), 0, -LF_EFORMAT, "bad mtime"},
    {WITH_MTIME("2023-02-29T00:00:00"), 0, -LF_EFORMAT, "bad mtime"},
    {WITH_MTIME("1900-02-29T00:00:00"), 0, -LF_EFORMAT, "bad mtime"},
    {WITH_MTIME("2025-01-01T24:00:00"), 0, -LF_EFORMAT, "bad mtime"},
    {WITH_MTIME("2025-01-01T00:60:00"), 0, -LF_EFORMAT, "bad mtime"},
    {WITH_MTIME("2016-12-31T23:59:60"), 0, -LF_EFORMAT, "bad mtime"},
    {WITH_SIZE(""), 0, -LF_EFORMAT, "bad size \"\""},
    {WITH_SIZE("-3"), 0, -LF_EFORMAT, "bad size \"-3\""},
    {WITH_SIZE("+3"), 0, -LF_EFORMAT, "bad size \"+3\""},
    {WITH_SIZE(" 3"), 0, -LF_EFORMAT, "bad size"},
    {WITH_SIZE("3e0"), 0, -LF_EFORMAT, "bad size"},
    {WITH_SIZE("18446744073709551616"), 0, -LF_EFORMAT, "bad size \"18446744073709551616\""},
    {ROOT_WITH("<file " NODE("f", "f", "644", T0) " size=\"17592186044417\" />"),
     LF_XML_WITHOUT_BODIES, -LF_EFORMAT, "exceeds the largest file"},
    /* positions */
    {"<filesystem>\n  <directory " DIR_ATTRS("/", "/") ">\n    <dir />", 0, -LF_EFORMAT,
     "3:5: unknown element <dir>"},
};

static void test_malformed_documents(void **state)
{
    (void)state;
    size_t count = sizeof malformed_documents / sizeof malformed_documents[0];
    assert_true(count >= 30);
    for (size_t i = 0; i < count; i++) {
        const struct malformed *m = &malformed_documents[i];
        lf_tree *tree = (lf_tree *)&tree; /* must be reset to NULL */
        lf_diagnostic diag = {0};
        int64_t status = lf_xml_parse(m->document, strlen(m->document), m->flags, &tree, &diag);
        if (status != m->status || !strstr(diag.message, m->message))
            fail_msg("document %zu (%s): got %s \"%s\", expected %s \"%s\"", i, m->document,
                     lf_error_name(status), diag.message, lf_error_name(m->status), m->message);
        assert_null(tree);
    }
}

/* --- Base64 --- */

static void test_base64_vectors(void **state)
{
    (void)state;
    /* RFC 4648 §10, plus every byte value */
    static const char *const vectors[][2] = {
        {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "+/8="},
    };
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        lf_buffer encoded = {0}, decoded = {0};
        size_t size = strlen(vectors[i][0]);
        assert_int_equal(lf_base64_encode((const uint8_t *)vectors[i][0], size, &encoded),
                         strlen(vectors[i][1]));
        assert_string_equal(lf_buffer_string(&encoded), vectors[i][1]);
        assert_int_equal(lf_base64_decode(vectors[i][1], strlen(vectors[i][1]), &decoded), size);
        assert_memory_equal(decoded.data, vectors[i][0], size);
        lf_buffer_free(&encoded);
        lf_buffer_free(&decoded);
    }
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    for (size_t size = 250; size <= 256; size++) {
        lf_buffer encoded = {0}, decoded = {0};
        assert_int_equal(lf_base64_encode(all, size, &encoded), (size + 2) / 3 * 4);
        assert_int_equal(lf_base64_decode((const char *)encoded.data, encoded.length, &decoded),
                         size);
        assert_memory_equal(decoded.data, all, size);
        lf_buffer_free(&encoded);
        lf_buffer_free(&decoded);
    }
}

static void test_base64_rejects(void **state)
{
    (void)state;
    static const char *const rejects[] = {
        "Zg=",      /* length not a multiple of 4 */
        "Zg",       /* unpadded */
        "Zh==",     /* non-zero bits after the last byte */
        "Zm9=",     /* ditto, one '=' */
        "Z===",     /* too much padding */
        "====",     /* padding only */
        "Zg==Zg==", /* padding in the middle */
        "Zm=v",     /* '=' before a symbol */
        "Zm9v\n",   /* whitespace */
        "Zm 9",     /* whitespace */
        "Zm9-",     /* URL-safe alphabet */
        "Zm9_",     /* URL-safe alphabet */
        "Zm9\x80",  /* not ASCII */
    };
    for (size_t i = 0; i < sizeof rejects / sizeof rejects[0]; i++) {
        lf_buffer decoded = {0};
        assert_int_equal(lf_buffer_append_string(&decoded, "keep"), 0);
        if (lf_base64_decode(rejects[i], strlen(rejects[i]), &decoded) != -LF_EFORMAT)
            fail_msg("\"%s\" was accepted", rejects[i]);
        assert_int_equal(decoded.length, 4);
        lf_buffer_free(&decoded);
    }
    /* an embedded NUL is a character outside the alphabet too */
    lf_buffer decoded = {0};
    assert_int_equal(lf_base64_decode("Zm9\0", 4, &decoded), -LF_EFORMAT);
    lf_buffer_free(&decoded);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_tree_is_394_bytes),
        cmocka_unit_test(test_seed_pretty_printed),
        cmocka_unit_test(test_attribute_order_and_quotes_are_free),
        cmocka_unit_test(test_declared_encodings),
        cmocka_unit_test(test_children_keep_document_order),
        cmocka_unit_test(test_canonical_documents_are_fixed_points),
        cmocka_unit_test(test_bodies_that_are_not_xml_text_go_base64),
        cmocka_unit_test(test_writer_refuses_unrepresentable_values),
        cmocka_unit_test(test_mtime_range_and_calendar),
        cmocka_unit_test(test_parsed_attributes),
        cmocka_unit_test(test_without_bodies),
        cmocka_unit_test(test_deep_tree),
        cmocka_unit_test(test_malformed_documents),
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_base64_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
