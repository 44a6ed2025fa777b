// esbuild bundles the page's CSS imports into main.css.
declare module "*.css";
